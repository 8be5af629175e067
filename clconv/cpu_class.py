"""Which kind of CPU a device is, for the GEMM micro-kernel's shape: the one place it is
decided.

A CPU class is the vector ISA the device compiles for, how many floats one vector register
holds, and how many vector registers there are. POCL names its CPU device after the LLVM
CPU it compiles for (`pthread-haswell-...`, `pthread-skylake-avx512-...`, newer POCL
`cpu-znver3-...`, on a Pi `pthread-cortex-a72`), so the name gives the ISA. The float
vector width a device reports is a weaker hint: POCL 3.1 reports 16 (preferred and native)
for `haswell`, whose registers hold 8, so it is used only for a device whose name says
nothing (another vendor's CPU driver).

The GEMM keeps a TM x (NV*TN) tile of C in registers: TM*NV*ceil(TN/lanes) accumulator
registers, plus NV*ceil(TN/lanes) for the row of B and one for the broadcast element of A.
A tile that needs more than the register file spills on every step of the K loop (the
AVX-512 shape 8 x 32, 16 zmm accumulators, is 32 ymm accumulators on AVX2).
"""
from __future__ import annotations

import platform
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuClass:
    name: str            # key of tuning_defaults.json's "cpu_class" section
    isa: str             # words for people: "AVX-512", "AVX2", "NEON (aarch64)", ...
    lanes: int           # floats per vector register
    registers: int       # vector registers the compiler may allocate

    def registers_for(self, tm: int, tn: int, nv: int) -> int:
        """Vector registers the GEMM's inner loop holds live for a TM x (NV*TN) tile."""
        per_vector = -(-tn // self.lanes)
        return tm * nv * per_vector + nv * per_vector + 1

    def fits(self, tm: int, tn: int, nv: int) -> bool:
        return self.registers_for(tm, tn, nv) <= self.registers


AVX512 = CpuClass("avx512", "AVX-512", 16, 32)
AVX2 = CpuClass("avx2", "AVX2", 8, 16)
AVX = CpuClass("avx", "AVX (no FMA)", 8, 16)
SSE = CpuClass("sse", "SSE", 4, 16)
NEON64 = CpuClass("neon64", "NEON (aarch64)", 4, 32)
NEON32 = CpuClass("neon32", "NEON (armhf)", 4, 16)
VFP = CpuClass("vfp", "VFP, no NEON (ARMv6)", 1, 32)
CLASSES = (AVX512, AVX2, AVX, SSE, NEON64, NEON32, VFP)

# LLVM x86 CPU names (llvm/lib/TargetParser/X86TargetParser.cpp) by their widest float ISA
_X86 = {
    AVX512: ("skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client",
             "icelake-server", "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids",
             "graniterapids", "graniterapids-d", "diamondrapids", "knl", "knm", "znver4",
             "znver5", "x86-64-v4"),
    AVX2: ("haswell", "broadwell", "skylake", "alderlake", "raptorlake", "meteorlake",
           "arrowlake", "arrowlake-s", "lunarlake", "pantherlake", "gracemont",
           "sierraforest", "grandridge", "clearwaterforest", "znver1", "znver2", "znver3",
           "bdver4", "x86-64-v3"),
    AVX: ("sandybridge", "ivybridge", "corei7-avx", "core-avx-i", "btver2", "bdver1",
          "bdver2", "bdver3"),
    SSE: ("core2", "penryn", "nehalem", "corei7", "westmere", "bonnell", "atom",
          "silvermont", "slm", "goldmont", "goldmont-plus", "tremont", "k8", "k8-sse3",
          "amdfam10", "barcelona", "btver1", "x86-64", "x86-64-v2", "generic"),
}
# `core-avx2` is an alias of haswell
_X86[AVX2] += ("core-avx2",)
_X86_NAMES = sorted(((name, cls) for cls, names in _X86.items() for name in names),
                    key=lambda item: -len(item[0]))  # longest first: skylake-avx512 > skylake
# ARM application cores with NEON (ARMv7-A and ARMv8-A+); ARMv6 and older have VFP only
_ARM_NEON = re.compile(r"(cortex-[ax]\d|neoverse|apple-|carmel|kryo|falkor|saphira|"
                       r"thunderx|tsv110|a64fx|ampere|exynos|cyclone|oryon)")
_ARM_OLD = re.compile(r"(arm11|arm1136|arm1176|arm9|arm7|arm8|strongarm|xscale|mpcore)")
_DRIVER_PREFIX = re.compile(r"^(pthread|cpu|basic|tbb)-")
_GENERIC_TARGET = re.compile(r"^(pthread|cpu|basic|tbb)--")  # no LLVM CPU: the baseline


def arm_architecture(machine: str) -> str | None:
    """What a host's `platform.machine()` says of its ARM architecture: 'aarch64',
    'armhf' (32-bit ARMv7 or ARMv8: Debian armhf's floor, VFPv3-D16), 'arm' (an older
    32-bit ARM, such as the ARMv6 Pi 0/1's armv6l), or None (not ARM)."""
    machine = machine.lower()
    if machine in ("aarch64", "arm64"):
        return "aarch64"
    if machine.startswith(("armv7", "armv8")):
        return "armhf"
    return "arm" if machine.startswith("arm") else None


def llvm_cpu_name(device_name: str) -> str:
    """The LLVM CPU name in a POCL device name ('' when there is none we know). POCL
    names its device driver-llvmcpu-model; where the LLVM CPU is left empty, as Debian's
    ARM builds leave it, the model follows a double dash (`pthread--cortex-a53` on an
    emulated Pi 3 with its own /proc/cpuinfo) and names the core."""
    rest = _DRIVER_PREFIX.sub("", device_name.strip().lower()).lstrip("-")
    for name, _ in _X86_NAMES:
        if rest == name or rest.startswith(name + "-"):
            return name
    match = _ARM_NEON.match(rest) or _ARM_OLD.match(rest)
    if match:
        return rest.split("-")[0] if not rest.startswith(("cortex-", "neoverse-", "apple-")) \
            else "-".join(rest.split("-")[:2])
    return ""


def classify(device_name: str, address_bits: int = 64, vector_width: int = 0,
             host_machine: str = "") -> CpuClass:
    """The CPU class of an OpenCL CPU device, from its name; from the host's architecture
    (`platform.machine()`: a CPU device runs on the host) when the name names no CPU we
    know, as under qemu-user, where POCL names its ARM device plain `pthread`: aarch64
    always has NEON, and a 32-bit ARM POCL compiles for its generic target, without
    NEON; else from the reported float vector width (16 vector registers assumed, so an
    unknown CPU gets a tile that spills nowhere rather than one that spills)."""
    cpu = llvm_cpu_name(device_name)
    for name, cls in _X86_NAMES:
        if cpu == name:
            return cls
    if cpu and _ARM_OLD.match(cpu):
        return VFP
    if cpu and address_bits == 32 and _GENERIC_TARGET.match(device_name.strip().lower()):
        # POCL compiles for the generic armhf target, which has no NEON (Debian's
        # build: its library is for arm1156t2f-s, -neon): scalar VFP registers
        return VFP
    if cpu:  # an ARM core with NEON: armhf has 16 quad registers, aarch64 32
        return NEON32 if address_bits == 32 else NEON64
    arch = arm_architecture(host_machine)
    if arch is not None:  # 32-bit: POCL's generic armhf target
        return NEON64 if arch == "aarch64" and address_bits == 64 else VFP
    if vector_width >= 16:
        return AVX512
    if vector_width == 8:
        return AVX2
    return SSE


def of_profile(profile) -> CpuClass | None:
    """The CPU class of a device profile, or None for a device that is not a CPU."""
    if "CPU" not in profile.device_types:
        return None
    return classify(profile.device_name, profile.address_bits,
                    getattr(profile, "native_vector_width_float", 0), platform.machine())
