"""Kernel discovery, building, memoisation and build errors; static kernel rules."""
import dataclasses
import re
import warnings

import pyopencl as cl
import pytest

import clconv
from clconv.build import (ENV_BUILD_LOG, EXACT_DIVIDE_OPTION, KernelBuildError, _build,
                          build_options, get_kernel, kernel_dir, log_build,
                          uses_pyopencl_cache)
from clconv.device import LIMITS

SOURCES = sorted(kernel_dir().glob("*.cl"))
OUR_KERNELS = {name for path in SOURCES
               for name in re.findall(r"__kernel\s+void\s+(\w+)", path.read_text())}


def test_kernel_sources_are_found():
    names = {p.name for p in SOURCES}
    assert {"conv2d.cl", "pool2d.cl", "activation.cl", "gemm.cl", "softmax.cl",
            "reduce.cl"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_each_file_builds_alone_as_opencl_c_1_2(path):
    rt = clconv.current_runtime()
    kernels = _build(rt.context, path, build_options(rt.profile, {}))
    assert kernels, f"{path.name} defines no kernel"
    for kernel in kernels.values():
        assert kernel.num_args <= 64, "VC4CL allows at most 64 kernel arguments"


# Kernel rules (docs/design.md) that a desktop compiler would not catch.
FORBIDDEN = {
    r"\bdouble\b": "double (no fp64 on Pi GPUs)",
    r"\blong\b": "long (no 64-bit integers on VC4CL)",
    r"\bhalf\b": "half",
    r"\bprintf\b": "printf",
    r"\bimage[123]d": "images",
    r"\bsampler_t\b": "samplers",
    r"\batom(ic)?_\w*\s*\(": "atomics",
}


HEADERS = sorted(kernel_dir().glob("*.h"))


@pytest.mark.parametrize("path", SOURCES + HEADERS, ids=lambda p: p.name)
def test_kernel_sources_follow_the_portability_rules(path):
    code = re.sub(r"//.*|/\*.*?\*/", "", path.read_text(), flags=re.S)
    for pattern, what in FORBIDDEN.items():
        assert not re.search(pattern, code), f"{path.name} uses {what}"
    # Tunables must have defaults so the file builds alone.
    for name in re.findall(r"^\s*#\s*if\s+(\w+)", code, flags=re.M):
        assert re.search(rf"#\s*ifndef\s+{name}", code), f"{name} has no #ifndef default"


def test_programs_and_kernels_are_memoised_without_pyopencl_warnings():
    rt = clconv.current_runtime()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # RepeatedKernelRetrieval would fail here
        first = get_kernel(rt, "activation.cl", "relu_backward")
        for _ in range(3):
            assert get_kernel(rt, "activation.cl", "relu_backward") is first
            clconv.functional.relu(__import__("numpy").ones(5, "float32"))
    other = get_kernel(rt, "activation.cl", "relu_backward", {"UNUSED_TUNABLE": 2})
    assert other is not first  # different options, different program


def test_pocl_builds_from_source_and_other_drivers_through_pyopencls_cache(monkeypatch,
                                                                           tmp_path):
    """POCL caches its builds itself; pyopencl's binary cache would make it compile and
    serialise every kernel of a program a second time (see uses_pyopencl_cache)."""
    def context_on(platform_name):
        platform = type("P", (), {"name": platform_name})()
        return type("C", (), {"devices": [type("D", (), {"platform": platform})()]})()

    assert not uses_pyopencl_cache(context_on("Portable Computing Language"))
    assert uses_pyopencl_cache(context_on("VideoCore IV GPU"))
    assert uses_pyopencl_cache(context_on("NVIDIA CUDA"))

    seen = []
    real_build = cl.Program.build

    def build(self, options=None, devices=None, cache_dir=None):
        seen.append(cache_dir)
        return real_build(self, options, devices, cache_dir)

    monkeypatch.setattr(cl.Program, "build", build)
    source = tmp_path / "one.cl"
    source.write_text("__kernel void one(__global float *a) { a[0] = 1.0f; }\n")
    rt = clconv.current_runtime()
    assert "one" in _build(rt.context, source, ("-cl-std=CL1.2",))
    on_pocl = rt.profile.platform_name == "Portable Computing Language"
    assert seen == [False if on_pocl else None]


def test_unknown_kernel_name_lists_the_file_kernels():
    with pytest.raises(KeyError, match="relu_backward"):
        get_kernel(clconv.current_runtime(), "activation.cl", "no_such_kernel")


def test_build_failure_shows_file_options_and_log(tmp_path):
    bad = tmp_path / "broken.cl"
    bad.write_text("__kernel void f(__global float *a) { a[0] = undeclared_thing; }\n")
    rt = clconv.current_runtime()
    with pytest.raises(KernelBuildError) as info:
        _build(rt.context, bad, ("-cl-std=CL1.2", "-DFOO=3"))
    message = str(info.value)
    assert str(bad) in message
    assert "-cl-std=CL1.2" in message and "-DFOO=3" in message
    assert "undeclared_thing" in info.value.log
    assert isinstance(info.value, RuntimeError)


def test_build_log_has_one_json_line_per_program_built(monkeypatch, tmp_path):
    """CLCONV_BUILD_LOG lists each program built: file, options without the -I path,
    device; a failed build is not listed."""
    import json

    log = tmp_path / "builds.jsonl"
    monkeypatch.setenv(ENV_BUILD_LOG, str(log))
    rt = clconv.current_runtime()
    options = build_options(rt.profile, {"LOGGED_TUNABLE": 7})
    _build(rt.context, kernel_dir() / "activation.cl", options)
    bad = tmp_path / "broken.cl"
    bad.write_text("__kernel void f(__global float *a) { a[0] = undeclared_thing; }\n")
    with pytest.raises(KernelBuildError):
        _build(rt.context, bad, options)
    _build(rt.context, kernel_dir() / "reduce.cl", build_options(rt.profile, {}))
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["file"] for e in entries] == ["activation.cl", "reduce.cl"]
    assert entries[0]["options"] == list(options)
    assert "-DLOGGED_TUNABLE=7" in entries[0]["options"]
    assert not any(o.startswith("-I") or o == "-I" for e in entries for o in e["options"])
    assert entries[0]["device"] == rt.context.devices[0].name.strip()
    monkeypatch.delenv(ENV_BUILD_LOG)
    _build(rt.context, kernel_dir() / "reduce.cl", options)
    assert len(log.read_text().splitlines()) == 2  # unset: nothing written


def test_build_log_lines_stay_whole_across_threads_and_processes(monkeypatch, tmp_path):
    import json
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    log = tmp_path / "builds.jsonl"
    monkeypatch.setenv(ENV_BUILD_LOG, str(log))
    options = tuple(f"-DLONG_OPTION_{i}={'x' * 50}" for i in range(40))  # ~3 KB a line
    writer = ("import sys; from clconv.build import log_build\n"
              "for i in range(200): log_build(f'p{sys.argv[1]}_{i}.cl', "
              f"{options!r}, 'dev')\n")
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(n)]) for n in range(3)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: log_build(f"t{i}.cl", options, "dev"), range(400)))
    assert all(p.wait(timeout=120) == 0 for p in procs)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(entries) == 400 + 3 * 200
    assert len({e["file"] for e in entries}) == len(entries)
    assert all(e["options"] == list(options) for e in entries)


def test_build_options_carry_device_limits_and_op_defines():
    profile = clconv.current_runtime().profile
    options = build_options(profile, {"TILE": 4})
    assert options[0] == "-cl-std=CL1.2"
    assert "-DTILE=4" in options
    assert f"-DCLCONV_MAX_WORK_GROUP_SIZE={profile.max_work_group_size}" in options


@pytest.mark.parametrize("exact", [False, True])
def test_exact_divide_and_sqrt_are_asked_for_where_the_device_has_them(exact):
    """OpenCL's default float divide may be 2.5 ulp off (NVIDIA's is): a device that
    reports CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT builds with the option that makes it
    exact; one that does not (VC4CL) never gets an option it would reject."""
    profile = dataclasses.replace(clconv.current_runtime().profile,
                                  correctly_rounded_divide_sqrt=exact)
    assert (EXACT_DIVIDE_OPTION in build_options(profile, {})) == exact


def test_the_pi_gpu_profiles_build_without_the_exact_divide_option():
    profile = clconv.current_runtime().profile
    for limits in LIMITS:
        assert not profile.with_limits(limits).correctly_rounded_divide_sqrt


def test_launch_respects_the_profile_work_group_limit(monkeypatch):
    """Every launch's local size is within the profile's limit (12 in VideoCore IV mode)."""
    import numpy as np

    rt = clconv.current_runtime()
    seen = []
    original = cl.Kernel.__call__

    def spy(self, queue, global_size, local_size, *args, **kwargs):
        if self.function_name in OUR_KERNELS:  # not pyopencl's own (e.g. fill)
            seen.append((global_size, local_size))
        return original(self, queue, global_size, local_size, *args, **kwargs)

    monkeypatch.setattr(cl.Kernel, "__call__", spy)
    clconv.functional.conv2d(np.ones((1, 2, 9, 9), np.float32), np.ones((3, 2, 3, 3), np.float32))
    clconv.functional.max_pool2d(np.ones((1, 2, 9, 9), np.float32), 2)
    assert seen
    for global_size, local_size in seen:
        assert local_size[0] <= rt.profile.max_work_group_size
        assert global_size[0] % local_size[0] == 0


@pytest.mark.parametrize("shape, dtype", [((2, 3, 4, 5), "float32"), ((7,), "int32"),
                                          ((1, 1), "float32"), ((0, 3), "float32")])
def test_allocate_makes_the_array_pyopencl_would(shape, dtype):
    """arrays.allocate takes pyopencl's internal fast constructor; the result must match
    pyopencl.array.empty in every attribute ops and users read."""
    import numpy as np
    import pyopencl.array as cla

    from clconv.arrays import allocate

    rt = clconv.current_runtime()
    ours = allocate(rt, shape, dtype)
    theirs = cla.empty(rt.queue, shape, dtype)
    for attribute in ("shape", "strides", "dtype", "size", "nbytes", "offset", "ndim"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert ours.flags.c_contiguous and ours.context == rt.context and ours.queue == rt.queue
    if ours.size:
        ours.fill(3)
        assert (ours.get() == np.full(shape, 3, dtype)).all()


def test_scalar_arguments_are_declared_from_their_python_types():
    import numpy as np

    from clconv.build import scalar_dtype

    assert scalar_dtype(3) == scalar_dtype(True) == scalar_dtype(np.int64(3)) == np.int32
    assert scalar_dtype(0.5) == scalar_dtype(np.float64(0.5)) == np.float32
    assert scalar_dtype(np.uint32(5)) == np.uint32
    assert scalar_dtype(cl.LocalMemory(16)) is None


def test_group_2d_fills_across_first_then_down():
    from clconv.build import group_2d

    assert group_2d(64, 4, 100) == (4, 16)   # the rest of the group goes down
    assert group_2d(64, 100, 100) == (64, 1)
    assert group_2d(16, 3, 2) == (3, 2)      # never more rows than the grid has
    assert group_2d(12, 5, 7) == (5, 2)      # VideoCore IV's 12: 10 work-items fit


def test_spread_groups_halves_the_group_until_every_compute_unit_has_a_few():
    """A small grid in big groups leaves compute units idle (SqueezeNet's 13x13 GEMMs
    made 3 groups of 16 for 2 CPU threads): down first, then across, never below 1."""
    from types import SimpleNamespace

    from clconv.build import GROUPS_PER_UNIT, spread_groups
    two = SimpleNamespace(compute_units=2)
    assert spread_groups(two, (8, 2), 8, 6) == (4, 1)   # 3 groups -> 6 -> 12
    assert spread_groups(two, (16, 1), 64, 64) == (16, 1)  # already 256 groups
    assert spread_groups(two, (8, 2), 8, 6, planes=4) == (8, 2)  # 4 planes: 12 groups
    assert spread_groups(two, (4, 4), 1, 1) == (1, 1)   # one item: one group of one
    lx, ly = spread_groups(SimpleNamespace(compute_units=3), (16, 4), 40, 9)
    assert -(-40 // lx) * -(-9 // ly) >= GROUPS_PER_UNIT * 3


def test_a_kernel_directory_with_spaces_in_its_path_builds(monkeypatch, tmp_path):
    """pyopencl joins the options with spaces, so the -I path must reach the compiler
    quoted; conv2d.cl #includes a header from its own directory."""
    import shutil

    from clconv import build

    spaced = tmp_path / "kernels with spaces"
    shutil.copytree(kernel_dir(), spaced)
    monkeypatch.setattr(build, "kernel_dir", lambda: spaced)
    clconv.clear_caches()
    try:
        rt = clconv.current_runtime()
        kernel = get_kernel(rt, "conv2d.cl", "conv2d_forward")
        assert kernel.function_name == "conv2d_forward"
    finally:
        clconv.clear_caches()  # drop the programs built from the temporary copy


def test_a_failed_build_is_tried_again_on_vc4cl_only(monkeypatch, tmp_path):
    """VC4C's result varies near its register limit: a build on VC4CL that fails is
    tried again (the VC4C gate proves every program compiles within the tries)."""
    import pyopencl as cl

    from clconv import build

    attempts = []

    class FlakyProgram:
        def __init__(self, context, source):
            pass

        def build(self, options, cache_dir):
            attempts.append(options)
            raise cl.RuntimeError("clBuildProgram failed: BUILD_PROGRAM_FAILURE")

    class Device:
        def __init__(self, platform_name, name, type_):
            self.platform = type("Platform", (), {"name": platform_name})()
            self.name, self.type = name, type_

    class Context:
        def __init__(self, device):
            self.devices = [device]

    monkeypatch.setattr(build.cl, "Program", FlakyProgram)
    kernel = build.kernel_dir() / "reduce.cl"
    vc4cl = Device("OpenCL for the Raspberry Pi VideoCore IV GPU", "VideoCore IV GPU",
                   cl.device_type.GPU)
    with pytest.raises(build.KernelBuildError, match="BUILD_PROGRAM_FAILURE"):
        build._build(Context(vc4cl), kernel, ("-cl-std=CL1.2",))
    assert len(attempts) == build.VC4CL_BUILD_TRIES == 5
    attempts.clear()
    pocl = Device("Portable Computing Language", "pthread-haswell", cl.device_type.CPU)
    with pytest.raises(build.KernelBuildError):
        build._build(Context(pocl), kernel, ("-cl-std=CL1.2",))
    assert len(attempts) == 1


def _fake_device(cpu: bool, platform_name: str):
    from types import SimpleNamespace
    return SimpleNamespace(type=cl.device_type.CPU if cpu else cl.device_type.GPU,
                           platform=SimpleNamespace(name=platform_name))


@pytest.mark.parametrize("arm", ["aarch64", "armhf"])
def test_only_pocls_cpu_on_arm_gets_the_target_features(monkeypatch, arm):
    from clconv import build
    pocl = "Portable Computing Language"
    source = "__kernel void k(__global float *x) { x[0] = 1.0f; }\n"
    monkeypatch.setattr(build, "host_arm", lambda: arm)
    wrapped = build.program_source(_fake_device(True, pocl), source)
    assert wrapped.startswith("#pragma clang attribute push")
    assert f'target("{build.TARGET_FEATURES[arm]}")' in wrapped
    assert "#line 1\n" + source in wrapped  # compiler messages keep the file's lines
    assert wrapped.rstrip().endswith("#pragma clang attribute pop")
    assert build.program_source(_fake_device(False, pocl), source) == source
    assert build.program_source(_fake_device(True, "rusticl"), source) == source
    monkeypatch.setattr(build, "host_arm", lambda: None)
    assert build.program_source(_fake_device(True, pocl), source) == source


@pytest.mark.parametrize("machine, arm", [("aarch64", "aarch64"), ("arm64", "aarch64"),
                                          ("armv7l", "armhf"), ("armv8l", "armhf"),
                                          ("armv6l", None), ("x86_64", None)])
def test_arm_hosts_by_their_machine_name(monkeypatch, machine, arm):
    import platform
    from clconv import build
    monkeypatch.setattr(platform, "machine", lambda: machine)
    assert build.host_arm() == arm


def test_pocl_on_arm_inlines_its_builtins(tmp_path):
    """The reason for TARGET_FEATURES, checked in the binary POCL caches: a builtin that
    is not inlined stays a function of the kernel's shared object."""
    import os
    import time
    from clconv import build
    rt = clconv.current_runtime()
    cache = os.environ.get("POCL_CACHE_DIR", "")
    if not (build.host_arm() and "CPU" in rt.profile.device_types
            and build.is_pocl(rt.profile.platform_name)):
        pytest.skip("needs POCL's CPU device on an ARM host (the emulated Pi tiers)")
    if not cache or not os.path.isdir(cache):
        pytest.skip("needs POCL_CACHE_DIR set to find the compiled kernel")
    name = f"inline_probe_{time.time_ns()}"  # a new program, not one POCL has cached
    path = tmp_path / "inline_probe.cl"
    path.write_text(f"__kernel void {name}(__global const float *a, __global float *o) {{\n"
                    "    const int i = get_global_id(0);\n"
                    "    vstore4(fma(vload4(i, a), vload4(i, a), (float4)(min(i, 3))), i, o);\n"
                    "}\n")
    kernel = _build(rt.context, path, build_options(rt.profile, {}))[name]
    a = cl.Buffer(rt.context, cl.mem_flags.READ_WRITE, 64)
    kernel.set_args(a, a)
    cl.enqueue_nd_range_kernel(rt.queue, kernel, (4,), (1,))
    rt.queue.finish()
    built = [os.path.join(d, f) for d, _, files in os.walk(cache) for f in files
             if f == name + ".so"]
    if not built:  # nothing to read: not a failure of the build, but say so
        pytest.skip(f"POCL kept no {name}.so in {cache}: the inlining is not checked")
    for so in built:
        data = open(so, "rb").read()
        assert b"_cl_fma" not in data and b"_cl_vload4" not in data, f"{so}: builtins not inlined"


def test_rectangular_copies_into_and_out_of_sub_buffers():
    """Strided images (a channel slice of several images, onnx/placement.py) are copied
    as rectangles between sub-buffers; POCL 3.1 crashed the process on those, so the copy
    goes between their parents at the sub-buffers' offsets (build.enqueue_copy)."""
    import numpy as np
    from clconv.arrays import image_stride, on_device, strided_images
    from clconv.ops.layout import contiguous_images, copy_images
    from clconv.runtime import current

    rt = current()
    images, per_image, stride, offset = 3, 2 * 32, 5 * 32, 64  # floats; 256-byte aligned
    host = np.random.default_rng(0).standard_normal(images * stride).astype(np.float32)
    root = cl.Buffer(rt.context, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR,
                     hostbuf=host)
    nbytes = ((images - 1) * stride + per_image) * 4
    view = strided_images(rt.queue, root.get_sub_region(offset * 4, nbytes),
                          (images, 2, 4, 8), stride)
    assert image_stride(view) == stride
    want = np.stack([host[offset + i * stride:][:per_image] for i in range(images)])
    got = contiguous_images(rt, view)  # out of the sub-buffer
    np.testing.assert_array_equal(got.get().reshape(images, -1), want)
    copy_images(rt, view, on_device(rt, -want.reshape(images, 2, 4, 8)))  # into it
    after = np.empty_like(host)
    cl.enqueue_copy(rt.queue, after, root)
    for i in range(images):
        np.testing.assert_array_equal(after[offset + i * stride:][:per_image], -want[i])
        np.testing.assert_array_equal(after[i * stride:offset + i * stride],
                                      host[i * stride:offset + i * stride])  # untouched
