"""The CPU class (vector ISA, lanes, registers) derived from OpenCL device names, and
the GEMM tile each class gets by default."""
import dataclasses

import pytest

import clconv
from clconv import cpu_class, tuning
from clconv.algos import VARIANTS
from clconv.device import DeviceKind


@pytest.mark.parametrize("name, bits, expected", [
    ("pthread-skylake-avx512-AMD EPYC", 64, cpu_class.AVX512),  # POCL 3.1, Zen 4
    ("pthread-znver4", 64, cpu_class.AVX512),
    ("cpu-icelake-server-Intel(R) Xeon(R)", 64, cpu_class.AVX512),  # POCL 5+ spelling
    ("pthread-haswell-AMD EPYC", 64, cpu_class.AVX2),  # POCL 3.1, Zen 3
    ("pthread-znver3-AMD Ryzen 7 5800X", 64, cpu_class.AVX2),
    ("pthread-skylake-Intel(R) Core(TM) i7-6700", 64, cpu_class.AVX2),  # not skylake-avx512
    ("pthread-x86-64-v3", 64, cpu_class.AVX2),
    ("pthread-sandybridge", 64, cpu_class.AVX),
    ("pthread-nehalem", 64, cpu_class.SSE),
    ("pthread-x86-64", 64, cpu_class.SSE),
    ("pthread-cortex-a72", 64, cpu_class.NEON64),  # Pi 4, 64-bit OS
    ("pthread-cortex-a76-ARM", 64, cpu_class.NEON64),  # Pi 5
    ("pthread-cortex-a53", 32, cpu_class.NEON32),  # Pi 3, 32-bit OS
    ("pthread--cortex-a53", 64, cpu_class.NEON64),  # Debian's POCL 3.1, emulated Pi 3
    ("pthread--cortex-a72", 32, cpu_class.VFP),  # generic armhf: POCL compiles no NEON
    ("pthread-cortex-a7", 32, cpu_class.NEON32),  # Pi 2
    ("pthread-arm1176jzf-s", 32, cpu_class.VFP),  # Pi 0/1: ARMv6, no NEON
    ("cpu-neoverse-n1", 64, cpu_class.NEON64),
])
def test_class_from_pocl_device_name(name, bits, expected):
    assert cpu_class.classify(name, bits) == expected


def test_names_that_name_no_cpu_fall_back_to_the_reported_width():
    assert cpu_class.llvm_cpu_name("Intel(R) Core(TM) i9-9900K CPU @ 3.60GHz") == ""
    assert cpu_class.classify("Intel(R) Core(TM) i9", 64, vector_width=16) == cpu_class.AVX512
    assert cpu_class.classify("Intel(R) Core(TM) i7", 64, vector_width=8) == cpu_class.AVX2
    assert cpu_class.classify("some cpu", 64, vector_width=0) == cpu_class.SSE
    # the name wins over a width: POCL 3.1 reports 16 floats for haswell's 8-float ymm
    assert cpu_class.classify("pthread-haswell", 64, vector_width=16) == cpu_class.AVX2


def test_unnamed_arm_devices_take_the_hosts_architecture():
    # qemu-user: POCL names its device plain "pthread" on either ARM
    assert cpu_class.classify("pthread", 64, 4, host_machine="aarch64") == cpu_class.NEON64
    assert cpu_class.classify("pthread", 32, 4, host_machine="armv7l") == cpu_class.VFP
    assert cpu_class.classify("pthread", 32, 4, host_machine="armv6l") == cpu_class.VFP
    for machine in ("aarch64", "arm64"):  # a 32-bit POCL on a 64-bit ARM kernel
        assert cpu_class.classify("pthread", 32, 4, host_machine=machine) == cpu_class.VFP
    assert cpu_class.classify("pthread", 64, 8, host_machine="x86_64") == cpu_class.AVX2
    # a name that says the CPU wins over the host
    assert cpu_class.classify("pthread-cortex-a72", 32, 4, host_machine="armv7l") == \
        cpu_class.NEON32


def test_longest_cpu_name_is_taken():
    assert cpu_class.llvm_cpu_name("pthread-skylake-avx512-AMD EPYC") == "skylake-avx512"
    assert cpu_class.llvm_cpu_name("pthread-skylake-Intel") == "skylake"
    assert cpu_class.llvm_cpu_name("pthread-cortex-a72") == "cortex-a72"


def test_register_count_of_a_tile():
    # AVX-512's shape on AVX2: 8 rows x 2 float16 = 32 ymm accumulators, it spills
    assert cpu_class.AVX512.registers_for(8, 16, 2) == 8 * 2 + 2 + 1
    assert cpu_class.AVX2.registers_for(8, 16, 2) == 8 * 4 + 4 + 1
    assert not cpu_class.AVX2.fits(8, 16, 2)
    assert cpu_class.AVX2.fits(6, 8, 2)


@pytest.mark.parametrize("cls", cpu_class.CLASSES, ids=lambda c: c.name)
def test_every_class_has_a_gemm_tile_that_fits_its_registers(cls):
    tile = tuning.shipped_defaults()["cpu_class"][cls.name]["gemm_tile"]
    assert cls.fits(tile["TM"], tile["TN"], tile["NV"]), (cls, tile)
    for op in ("forward", "grad_input", "grad_weight", "input_affine", "short_k",
               "memory_bound"):
        nv = tile.get(op, {}).get("NV", tile["NV"])
        assert cls.fits(tile.get(op, {}).get("TM", tile["TM"]), tile["TN"], nv), (cls, op)
    # one B register per TN-vector: the tile's columns are whole registers
    assert tile["TN"] % cls.lanes == 0


@pytest.mark.parametrize("name, bits, tile", [
    ("pthread-haswell-AMD EPYC", 64, (6, 8, 2)),
    ("pthread-skylake-avx512-AMD EPYC", 64, (8, 16, 2)),
    ("pthread-cortex-a72", 64, (8, 4, 2)),
    ("pthread-cortex-a53", 32, (6, 4, 2)),
    ("pthread--cortex-a53", 64, (8, 4, 2)),  # Debian's POCL on an aarch64 Pi 3
    ("pthread--cortex-a72", 32, (4, 4, 1)),  # ... on an armhf Pi 4: VFP code
])
def test_cpu_defaults_follow_the_class(name, bits, tile):
    real = clconv.current_runtime().profile
    cpu = dataclasses.replace(real, device_type="ALL | CPU", kind=DeviceKind.POCL_CPU,
                              device_name=name, address_bits=bits, limits_name="")
    for algo in ("im2col", "gemm1x1", "winograd"):
        for op in ("forward", "grad_input", "grad_weight"):
            params = tuning.default_params(cpu, algo, op)
            assert (params["TM"], params["TN"], params["NV"]) == tile, (algo, op)
    # the CPU entry's per-op overrides apply over the class's tile
    gi = tuning.default_params(cpu, "gemm1x1", "grad_input")
    assert (gi["TM"], gi["NV"], gi["GI"]) == (tile[0], tile[2], 2)
    # a 1x1 convolution that applies an input batch norm: AVX-512's taller tile
    affine = tuning.default_params(cpu, "gemm1x1", "forward", "input_affine")
    assert affine["TM"] == (12 if cpu.cpu_class is cpu_class.AVX512 else tile[0])
    assert (affine["TN"], affine["NV"]) == tile[1:]
    # an im2col forward with a short K (a stem): AVX-512's wider tile, as many registers
    short = tuning.default_params(cpu, "im2col", "forward", "short_k")
    want = (4, 16, 4) if cpu.cpu_class is cpu_class.AVX512 else tile
    assert (short["TM"], short["TN"], short["NV"]) == want
    # a memory-bound 1x1 convolution: AVX-512's 2 x 64 tile
    bound = tuning.default_params(cpu, "gemm1x1", "forward", "memory_bound")
    want = (2, 16, 4) if cpu.cpu_class is cpu_class.AVX512 else tile
    assert (bound["TM"], bound["TN"], bound["NV"]) == want
    # fma() is a libm call where the class has no fused multiply-add (VFP before v4)
    fused = cpu.cpu_class is not cpu_class.VFP
    assert tuning.default_params(cpu, "im2col", "forward")["FMA"] == int(fused)


def test_gpus_and_videocore_keep_their_tiles():
    real = clconv.current_runtime().profile
    gpu = dataclasses.replace(real, device_type="GPU", kind=DeviceKind.GPU)
    assert gpu.cpu_class is None
    assert tuning.default_params(gpu, "im2col") == \
        tuning.shipped_defaults()["device_type"]["GPU"]["im2col"]
    vc4 = real.with_limits("videocore4")
    assert vc4.cpu_class is None
    params = tuning.default_params(vc4, "im2col")
    assert (params["TM"], params["NV"]) == (1, 1)


@pytest.mark.parametrize("cls", cpu_class.CLASSES, ids=lambda c: c.name)
def test_tuner_space_contains_every_class_tile(cls):
    from clconv.geometry import conv_geometry
    tile = tuning.shipped_defaults()["cpu_class"][cls.name]["gemm_tile"]
    real = clconv.current_runtime().profile
    geo = conv_geometry((1, 16, 28, 28), (16, 16, 3, 3), 1, 1, 1, 1)
    space = VARIANTS["im2col"].space(real, geo, "forward")
    assert any((p["TM"], p["TN"], p["NV"]) == (tile["TM"], tile["TN"], tile["NV"])
               for p in space)
    if cls is cpu_class.AVX512:
        cpu = dataclasses.replace(real, device_type="ALL | CPU", kind=DeviceKind.POCL_CPU,
                                  device_name="pthread-skylake-avx512", limits_name="")
        affine = dict(tile, **tile["input_affine"])
        assert any((p["TM"], p["TN"], p["NV"]) == (affine["TM"], affine["TN"], affine["NV"])
                   for p in VARIANTS["gemm1x1"].space(cpu, geo, "forward"))
        bound = dict(tile, **tile["memory_bound"])
        assert any((p["TM"], p["TN"], p["NV"]) == (bound["TM"], bound["TN"], bound["NV"])
                   for p in VARIANTS["gemm1x1"].space(cpu, geo, "forward"))
        short = dict(tile, **tile["short_k"])
        assert any((p["TM"], p["TN"], p["NV"]) == (short["TM"], short["TN"], short["NV"])
                   for p in VARIANTS["im2col"].space(cpu, geo, "forward"))
    # 4 vectors only where the class's registers hold the tile
    for p in VARIANTS["im2col"].space(real, geo, "forward"):
        if p["NV"] > 2:
            assert real.cpu_class is not None and real.cpu_class.fits(p["TM"], p["TN"], p["NV"])


def test_this_device_has_a_class():
    profile = clconv.current_runtime().profile
    if "CPU" not in profile.device_types:
        pytest.skip(f"not a CPU device: {profile.label}")
    cls = profile.cpu_class
    assert cls in cpu_class.CLASSES
    print(f"{profile.device_name}: {cls}")


