"""Device ranking and selection on fake platforms, plus the real device's profile."""
from dataclasses import FrozenInstanceError

import pyopencl as cl
import pytest

from clconv.device import (DeviceKind, DeviceProfile, DeviceSelectionError, describe,
                           enumerate_devices, rank, select_device)

GPU, CPU = cl.device_type.GPU, cl.device_type.CPU


class FakeDevice:
    def __init__(self, name, type_):
        self.name, self.type = name, type_


class FakePlatform:
    def __init__(self, name, devices, error=False):
        self.name, self._devices, self._error = name, devices, error
        for d in devices:
            d.platform = self

    def get_devices(self):
        if self._error:  # what rusticl/Clover do with no device
            raise cl.RuntimeError("clGetDeviceIDs failed: DEVICE_NOT_FOUND")
        return self._devices


def pocl():
    return FakePlatform("Portable Computing Language", [FakeDevice("cpu-cortex-a53", CPU)])


def vc4cl():
    return FakePlatform("OpenCL for the Raspberry Pi VideoCore IV GPU",
                        [FakeDevice("VideoCore IV GPU", GPU)])


def rusticl_v3d():
    return FakePlatform("rusticl", [FakeDevice("V3D 4.2.14.0", GPU)])


def llvmpipe():
    return FakePlatform("rusticl", [FakeDevice("llvmpipe (LLVM 15.0.6, 256 bits)", CPU)])


def empty(name):
    return FakePlatform(name, [], error=True)


def chosen(platforms, environ=None):
    return select_device(enumerate_devices(platforms), environ or {})


def test_vc4cl_beats_pocl_in_any_order():
    for platforms in ([pocl(), vc4cl()], [vc4cl(), pocl()]):
        selection = chosen(platforms)
        assert selection.candidate.kind == DeviceKind.VC4CL
        assert "VC4CL" in selection.reason


def test_v3d_is_ranked_after_vc4cl_and_before_cpu():
    ranked = rank(enumerate_devices([pocl(), rusticl_v3d(), vc4cl()]))
    assert [c.kind for c in ranked] == [DeviceKind.VC4CL, DeviceKind.V3D, DeviceKind.POCL_CPU]
    assert chosen([pocl(), rusticl_v3d()]).candidate.device_name.startswith("V3D")


def test_other_gpu_before_pocl_and_llvmpipe_last():
    other_gpu = FakePlatform("NVIDIA CUDA", [FakeDevice("GeForce", GPU)])
    ranked = rank(enumerate_devices([llvmpipe(), pocl(), other_gpu]))
    assert [c.kind for c in ranked] == [DeviceKind.GPU, DeviceKind.POCL_CPU,
                                        DeviceKind.SOFTWARE_RASTERIZER]


def test_a_simulator_reporting_every_type_is_ranked_chosen_for_and_tuned_as_a_gpu():
    """Oclgrind reports ACCELERATOR | CPU | GPU | DEFAULT at once."""
    import dataclasses

    import clconv
    from clconv import tuning
    from clconv.algos.base import is_cpu

    every = cl.device_type.ALL
    oclgrind = FakePlatform("Oclgrind", [FakeDevice("Oclgrind Simulator", every)])
    ranked = rank(enumerate_devices([pocl(), oclgrind]))
    assert [c.kind for c in ranked] == [DeviceKind.GPU, DeviceKind.POCL_CPU]
    real = clconv.current_runtime().profile
    sim = dataclasses.replace(real, kind=DeviceKind.GPU,
                              device_type=cl.device_type.to_string(every))
    assert "CPU" in sim.device_type  # else this test checks nothing
    assert sim.device_types >= {"GPU"} and "CPU" not in sim.device_types
    assert not is_cpu(sim)
    gpu = tuning.shipped_defaults()["device_type"]["GPU"]["im2col"]
    assert tuning.default_params(sim, "im2col") == gpu
    pocl_cpu = dataclasses.replace(real, kind=DeviceKind.POCL_CPU, device_type="ALL | CPU")
    assert is_cpu(pocl_cpu) and pocl_cpu.device_types == {"ALL", "CPU"}


def test_empty_platforms_are_skipped():
    candidates = enumerate_devices([empty("rusticl"), empty("Clover"), pocl()])
    assert [c.platform_name for c in candidates] == ["Portable Computing Language"]
    assert chosen([empty("rusticl"), empty("Clover"), pocl()]).candidate.kind == DeviceKind.POCL_CPU


def test_no_device_at_all_names_the_package_to_install():
    with pytest.raises(DeviceSelectionError, match="pocl-opencl-icd"):
        chosen([empty("rusticl"), empty("Clover")])


def test_clconv_device_override_by_substring_and_index():
    platforms = [vc4cl(), pocl()]
    assert chosen(platforms, {"CLCONV_DEVICE": "portable"}).candidate.kind == DeviceKind.POCL_CPU
    assert chosen(platforms, {"CLCONV_DEVICE": "1"}).candidate.kind == DeviceKind.POCL_CPU
    assert chosen(platforms, {"CLCONV_DEVICE": "0"}).candidate.kind == DeviceKind.VC4CL


def test_override_matching_nothing_lists_the_devices():
    with pytest.raises(DeviceSelectionError) as info:
        chosen([vc4cl(), pocl()], {"CLCONV_DEVICE": "nvidia"})
    message = str(info.value)
    assert "'nvidia' matches no device" in message
    assert "VideoCore IV GPU" in message and "cpu-cortex-a53" in message
    with pytest.raises(DeviceSelectionError, match="matches no device"):
        chosen([pocl()], {"CLCONV_DEVICE": "7"})


def test_clconv_device_wins_over_pyopencl_ctx():
    environ = {"CLCONV_DEVICE": "videocore", "PYOPENCL_CTX": "1"}
    assert chosen([vc4cl(), pocl()], environ).candidate.kind == DeviceKind.VC4CL


def test_pyopencl_ctx_platform_and_device_indices():
    selection = chosen([vc4cl(), pocl()], {"PYOPENCL_CTX": "1:0"})
    assert selection.candidate.kind == DeviceKind.POCL_CPU
    assert "PYOPENCL_CTX" in selection.reason
    with pytest.raises(DeviceSelectionError, match="PYOPENCL_CTX"):
        chosen([pocl()], {"PYOPENCL_CTX": "3"})


def test_describe_marks_the_chosen_device():
    candidates = enumerate_devices([pocl(), vc4cl()])
    table = describe(candidates, select_device(candidates, {}).candidate)
    chosen_line = next(line for line in table.splitlines() if line.startswith("*"))
    assert "VideoCore IV GPU" in chosen_line


@pytest.mark.smoke
def test_real_device_profile_is_frozen_and_sane():
    import clconv

    profile = clconv.current_runtime().profile
    assert isinstance(profile, DeviceProfile)
    assert profile.max_work_group_size >= 1
    assert len(profile.max_work_item_sizes) >= 1
    assert profile.address_bits in (32, 64)
    assert profile.opencl_c_version.startswith("OpenCL C")
    assert profile.profile in ("FULL_PROFILE", "EMBEDDED_PROFILE")
    with pytest.raises(FrozenInstanceError):
        profile.max_work_group_size = 1


def test_videocore4_limits_cap_the_profile():
    import clconv

    real = clconv.current_runtime().profile
    capped = real.with_limits("videocore4")
    assert capped.max_work_group_size == min(12, real.max_work_group_size)
    assert max(capped.max_work_item_sizes) <= 12
    assert capped.address_bits == 32 and not capped.has_fp64 and not capped.has_fp16
    assert capped.limits_name == "videocore4"
    # it chooses as a VC4CL device would (shipped tunables, VC4C's rules)
    assert capped.kind == DeviceKind.VC4CL and capped.device_type == "GPU"
    with pytest.raises(ValueError, match="unknown limits"):
        real.with_limits("pi9")


def test_v3d_limits_choose_as_a_pi_4_gpu():
    import clconv

    real = clconv.current_runtime().profile
    capped = real.with_limits("v3d")
    assert capped.max_work_group_size == min(256, real.max_work_group_size)
    assert capped.address_bits == 32 and capped.limits_name == "v3d"
    # the Pi 4/5 kind and type, so tuning_defaults.json's V3D entry is used
    assert capped.kind == DeviceKind.V3D and capped.device_type == "GPU"


def test_the_interpreter_waits_for_queued_work_before_it_exits(tmp_path):
    """A script ending with kernels still queued must not exit under them: POCL then
    crashed in LLVM, compiling a queued kernel on a worker thread while the process
    tore down (2 runs in 5 of the README's tour, from an empty kernel cache)."""
    import subprocess
    import sys
    script = tmp_path / "ends_with_queued_work.py"
    script.write_text(
        "import atexit\n"
        "marker = []\n"
        "# registered before clconv's handler, so it runs after it (atexit is LIFO)\n"
        "atexit.register(lambda: print('status', marker[0].command_execution_status))\n"
        "import numpy as np, pyopencl as cl, clconv, clconv.functional as F\n"
        "from clconv.arrays import on_device\n"
        "rt = clconv.current_runtime()\n"
        "x = on_device(rt, np.random.rand(8, 64, 64, 64).astype(np.float32))\n"
        "w = on_device(rt, np.random.rand(64, 64, 3, 3).astype(np.float32))\n"
        "for _ in range(10):  # a second or so of queued work\n"
        "    y = F.conv2d(x, w, padding=1)\n"
        "marker.append(cl.enqueue_marker(clconv.current_runtime().queue))\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("status 0"), r.stdout  # CL_COMPLETE


def test_pocl_threads_are_pinned_only_where_every_cpu_they_take_is_allowed():
    from clconv.device import pin_pocl_threads

    env = {}
    assert pin_pocl_threads(env, allowed_cpus={0, 1}, cpu_count=2)
    assert env["POCL_AFFINITY"] == "1"
    # a container's cpuset without CPU 0: POCL would pin thread 0 there, so leave it
    env = {}
    assert not pin_pocl_threads(env, allowed_cpus={2, 3}, cpu_count=4)
    assert "POCL_AFFINITY" not in env
    # POCL's default count is every CPU; the cap narrows the CPUs it takes
    env = {}
    assert not pin_pocl_threads(env, allowed_cpus={0, 1}, cpu_count=8)
    env = {"POCL_MAX_PTHREAD_COUNT": "2"}
    assert pin_pocl_threads(env, allowed_cpus={0, 1}, cpu_count=8)
    # the user's word stands, either way
    env = {"POCL_AFFINITY": "0"}
    assert not pin_pocl_threads(env, allowed_cpus={0, 1}, cpu_count=2)
    assert env["POCL_AFFINITY"] == "0"
    env = {"POCL_AFFINITY": "1"}
    assert pin_pocl_threads(env, allowed_cpus=set(), cpu_count=2)
    assert not pin_pocl_threads({}, allowed_cpus=(), cpu_count=0)
