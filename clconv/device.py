"""Find OpenCL devices, rank them, and describe the chosen one.

Ranking (docs/design.md): Raspberry Pi GPU first (VC4CL, then V3D), then other GPUs,
then POCL on the CPU, then other CPU drivers, then software rasterizers (llvmpipe).
`CLCONV_DEVICE` (index or substring of "platform:device") overrides the ranking, then
`PYOPENCL_CTX` with PyOpenCL's own meaning. Before the first platform query, POCL's
worker threads are asked to stay on one CPU each where that is safe (pin_pocl_threads).
"""
from __future__ import annotations

import dataclasses
import enum
import os
from dataclasses import dataclass
from typing import Sequence

import pyopencl as cl

from . import cpu_class

ENV_DEVICE = "CLCONV_DEVICE"
ENV_LIMITS = "CLCONV_LIMITS"


class DeviceKind(enum.IntEnum):
    """Device classes; a lower value is preferred."""

    VC4CL = 0
    V3D = 1
    GPU = 2
    POCL_CPU = 3
    OTHER = 4
    SOFTWARE_RASTERIZER = 5


_KIND_REASON = {
    DeviceKind.VC4CL: "Raspberry Pi 0-3 GPU (VC4CL) is preferred over everything",
    DeviceKind.V3D: "Raspberry Pi 4/5 GPU (V3D) is preferred after VC4CL",
    DeviceKind.GPU: "a GPU is preferred over CPU drivers",
    DeviceKind.POCL_CPU: "POCL on the CPU is the default when no GPU is present",
    DeviceKind.OTHER: "a CPU or accelerator driver other than POCL",
    DeviceKind.SOFTWARE_RASTERIZER: "software rasterizer (llvmpipe) is the last resort",
}


class DeviceSelectionError(RuntimeError):
    """No usable OpenCL device, or a user override that matches none."""


@dataclass(frozen=True)
class DeviceProfile:
    """The device limits that kernels and launch sizes depend on. Read from the device."""

    platform_name: str
    device_name: str
    vendor: str
    driver_version: str
    device_type: str  # "GPU", "CPU", "ACCELERATOR", ...
    kind: DeviceKind
    max_work_group_size: int
    max_work_item_sizes: tuple[int, ...]
    local_mem_size: int
    local_mem_is_global: bool  # VC4CL emulates local memory in global memory
    max_constant_args: int
    max_constant_buffer_size: int
    max_mem_alloc_size: int
    global_mem_size: int
    address_bits: int
    compute_units: int
    extensions: frozenset[str]
    opencl_c_version: str
    profile: str  # "FULL_PROFILE" or "EMBEDDED_PROFILE"
    limits_name: str = ""  # non-empty when limits were capped to imitate another device
    native_vector_width_float: int = 0  # floats per native vector (0: not read)
    preferred_vector_width_float: int = 0
    # CL_FP_CORRECTLY_ROUNDED_DIVIDE_SQRT: the device can build with
    # -cl-fp32-correctly-rounded-divide-sqrt (OpenCL's default divide may be 2.5 ulp off)
    correctly_rounded_divide_sqrt: bool = False

    @property
    def has_fp16(self) -> bool:
        return "cl_khr_fp16" in self.extensions

    @property
    def has_fp64(self) -> bool:
        return "cl_khr_fp64" in self.extensions

    @property
    def label(self) -> str:
        return f"{self.platform_name}:{self.device_name}"

    @property
    def device_types(self) -> frozenset[str]:
        """The device's OpenCL types as words (pyopencl spells POCL's 'ALL | CPU').
        Oclgrind, a simulated GPU, reports every type at once: a device that says GPU
        is chosen for and tuned as a GPU, as `classify` ranks it, not as a CPU."""
        words = frozenset(part.strip() for part in self.device_type.split("|"))
        return words - {"CPU"} if "GPU" in words else words

    @property
    def cpu_class(self):
        """The CPU class (vector ISA and registers; see cpu_class.py), or None off CPUs."""
        return cpu_class.of_profile(self)

    @classmethod
    def from_device(cls, device) -> "DeviceProfile":
        platform = device.platform
        local_type = device.local_mem_type
        return cls(
            platform_name=platform.name.strip(),
            device_name=device.name.strip(),
            vendor=device.vendor.strip(),
            driver_version=device.driver_version.strip(),
            device_type=cl.device_type.to_string(device.type).strip(),
            kind=classify(platform.name, device.name, device.type),
            max_work_group_size=int(device.max_work_group_size),
            max_work_item_sizes=tuple(int(s) for s in device.max_work_item_sizes),
            local_mem_size=int(device.local_mem_size),
            local_mem_is_global=local_type != cl.device_local_mem_type.LOCAL,
            max_constant_args=int(device.max_constant_args),
            max_constant_buffer_size=int(device.max_constant_buffer_size),
            max_mem_alloc_size=int(device.max_mem_alloc_size),
            global_mem_size=int(device.global_mem_size),
            address_bits=int(device.address_bits),
            compute_units=int(device.max_compute_units),
            extensions=frozenset(device.extensions.split()),
            opencl_c_version=_opencl_c_version(device),
            profile=device.profile.strip(),
            native_vector_width_float=int(device.native_vector_width_float),
            preferred_vector_width_float=int(device.preferred_vector_width_float),
            correctly_rounded_divide_sqrt=bool(
                device.single_fp_config & cl.device_fp_config.CORRECTLY_ROUNDED_DIVIDE_SQRT),
        )

    def with_limits(self, name: str) -> "DeviceProfile":
        """A copy with another device's limits imposed (see `LIMITS`)."""
        try:
            caps = LIMITS[name]
        except KeyError:
            raise ValueError(
                f"{ENV_LIMITS}: unknown limits {name!r}; expected one of {sorted(LIMITS)}"
            ) from None
        changes = {}
        for field, cap in caps.items():
            current = getattr(self, field)
            if field in IMITATED:
                changes[field] = cap
            elif field == "max_work_item_sizes":
                changes[field] = tuple(min(c, cap) for c in current)
            elif field == "extensions":
                changes[field] = current - cap
            elif isinstance(cap, bool):
                changes[field] = cap
            else:
                changes[field] = min(current, cap)
        return dataclasses.replace(self, limits_name=name, **changes)


# Limits of real Pi GPUs, imposed on another device so that kernels assuming bigger
# work-groups or more memory fail on the desktop instead of on the Pi. The fields in
# IMITATED are taken as they are: with the kind and type of a VideoCore IV, the profile
# picks the variants and tunables VC4CL would get (tuning_defaults.json's VC4CL entry,
# validate()'s VC4C rules), so the programs built are the ones VC4CL must compile; with
# a V3D's, the Pi 4/5 defaults run (on rusticl's llvmpipe in CI).
IMITATED = ("kind", "device_type")
LIMITS: dict[str, dict] = {
    "videocore4": {
        "kind": DeviceKind.VC4CL,
        "device_type": "GPU",
        "max_work_group_size": 12,
        "max_work_item_sizes": 12,
        "local_mem_is_global": True,
        "max_constant_args": 64,
        "address_bits": 32,
        "extensions": frozenset({"cl_khr_fp16", "cl_khr_fp64"}),
        "correctly_rounded_divide_sqrt": False,
    },
    "v3d": {
        "kind": DeviceKind.V3D,
        "device_type": "GPU",
        "max_work_group_size": 256,
        "max_work_item_sizes": 256,
        "local_mem_size": 32 * 1024,
        "address_bits": 32,
        "extensions": frozenset({"cl_khr_fp64"}),
        "correctly_rounded_divide_sqrt": False,
    },
}


def _opencl_c_version(device) -> str:
    try:
        return device.opencl_c_version.strip()
    except (cl.LogicError, AttributeError):  # OpenCL 1.0 devices lack the query
        return "OpenCL C 1.0"


def is_pocl(platform_name: str) -> bool:
    """Whether a platform is POCL, by its name."""
    return "portable computing language" in platform_name.lower()


def classify(platform_name: str, device_name: str, device_type: int) -> DeviceKind:
    """Put a device into one of the ranking classes by its names and type."""
    platform_l, device_l = platform_name.lower(), device_name.lower()
    if "videocore iv" in platform_l or "videocore iv" in device_l:
        return DeviceKind.VC4CL
    if device_l.startswith("v3d"):
        return DeviceKind.V3D
    if "llvmpipe" in device_l or "softpipe" in device_l:
        return DeviceKind.SOFTWARE_RASTERIZER
    if device_type & cl.device_type.GPU:
        return DeviceKind.GPU
    if is_pocl(platform_name) and device_type & cl.device_type.CPU:
        return DeviceKind.POCL_CPU
    return DeviceKind.OTHER


@dataclass(frozen=True)
class Candidate:
    """One enumerated device: its position in enumeration order and its class."""

    index: int
    platform_name: str
    device_name: str
    kind: DeviceKind
    device: object  # pyopencl.Device (or a fake in tests)

    @property
    def label(self) -> str:
        return f"{self.platform_name}:{self.device_name}"


def pin_pocl_threads(environ=None, allowed_cpus=None, cpu_count=None) -> bool:
    """Set POCL_AFFINITY=1 (POCL's pthread driver then keeps its worker thread i on CPU i)
    unless the user set it, and only where this process may run on every CPU those
    threads would be pinned to: 0 .. POCL_MAX_PTHREAD_COUNT-1, or every CPU (POCL's
    default count). Unpinned, the scheduler moved the workers between CPUs, and a model
    of many short kernels (SqueezeNet, 40 launches) took 12.7 ms at the median instead
    of 7.7 when runs were 50 ms apart (2-vCPU KVM guest); long kernels were unaffected.
    A CPU set that leaves some of them out (a container's cpuset) keeps POCL's default:
    POCL pins without looking at the set. Returns whether it is set now. Takes effect
    only if POCL has not started yet in this process."""
    environ = os.environ if environ is None else environ
    if environ.get("POCL_AFFINITY", "").strip():
        return environ["POCL_AFFINITY"].strip() not in ("0", "")
    if allowed_cpus is None:  # no such call off Linux: nothing known to be safe
        allowed_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else ()
    threads = cpu_count if cpu_count is not None else (os.cpu_count() or 0)
    cap = environ.get("POCL_MAX_PTHREAD_COUNT", "").strip()
    if cap.isdigit() and int(cap) > 0:
        threads = min(threads, int(cap))
    if threads < 1 or not set(range(threads)) <= set(allowed_cpus):
        return False
    environ["POCL_AFFINITY"] = "1"
    return True


_platforms_queried = False  # the OpenCL drivers loaded: they read their settings then


def opencl_started() -> bool:
    """Whether this process has asked OpenCL for its platforms, and so loaded the drivers,
    which read their environment settings (POCL_*) then: a setting made later is not
    seen."""
    return _platforms_queried


def enumerate_devices(platforms: Sequence | None = None) -> list[Candidate]:
    """Every device of every platform, in enumeration order. Empty platforms are skipped."""
    global _platforms_queried
    if platforms is None:
        pin_pocl_threads()
        _platforms_queried = True
        try:
            platforms = cl.get_platforms()
        except cl.Error:  # ocl-icd raises when no ICD is installed at all
            platforms = []
    found = []
    for platform in platforms:
        try:
            devices = platform.get_devices()
        except cl.Error:  # rusticl / Clover with no device answer DEVICE_NOT_FOUND
            continue
        for device in devices:
            found.append(
                Candidate(
                    index=len(found),
                    platform_name=platform.name.strip(),
                    device_name=device.name.strip(),
                    kind=classify(platform.name, device.name, device.type),
                    device=device,
                )
            )
    return found


def rank(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Best first; ties keep enumeration order."""
    return sorted(candidates, key=lambda c: (c.kind, c.index))


@dataclass(frozen=True)
class Selection:
    candidate: Candidate
    reason: str


def select_device(candidates: Sequence[Candidate] | None = None,
                  environ: dict | None = None) -> Selection:
    """Choose a device: `CLCONV_DEVICE`, then `PYOPENCL_CTX`, then the ranking."""
    environ = os.environ if environ is None else environ
    candidates = enumerate_devices() if candidates is None else list(candidates)
    if not candidates:
        raise DeviceSelectionError(
            "no OpenCL device found. Install an OpenCL driver, e.g. on Debian/Raspberry Pi OS: "
            "sudo apt-get install pocl-opencl-icd"
        )
    override = environ.get(ENV_DEVICE, "").strip()
    if override:
        return _select_override(candidates, override)
    pyopencl_ctx = environ.get("PYOPENCL_CTX", "").strip()
    if pyopencl_ctx:
        return _select_pyopencl_ctx(candidates, pyopencl_ctx)
    best = rank(candidates)[0]
    return Selection(best, f"highest ranked: {_KIND_REASON[best.kind]}")


def _select_override(candidates: Sequence[Candidate], override: str) -> Selection:
    if override.isdigit():
        index = int(override)
        if index < len(candidates):
            return Selection(candidates[index], f"{ENV_DEVICE}={override} (device index)")
    else:
        matches = [c for c in candidates if override.lower() in c.label.lower()]
        if matches:
            best = rank(matches)[0]
            return Selection(best, f"{ENV_DEVICE}={override!r} matches {best.label!r}")
    raise DeviceSelectionError(
        f"{ENV_DEVICE}={override!r} matches no device; expected an index or a "
        f"case-insensitive substring of 'platform:device'. Devices:\n" + describe(candidates)
    )


def _select_pyopencl_ctx(candidates: Sequence[Candidate], value: str) -> Selection:
    """PyOpenCL's meaning: 'platform[:device]', each an index or a name substring."""
    platform_part, _, device_part = value.partition(":")
    platform_names = list(dict.fromkeys(c.platform_name for c in candidates))
    chosen_platform = _pick(platform_names, platform_part)
    on_platform = [c for c in candidates if c.platform_name == chosen_platform]
    name = _pick([c.device_name for c in on_platform], device_part)
    device = next((c for c in on_platform if c.device_name == name), None)
    if device is None:
        raise DeviceSelectionError(
            f"PYOPENCL_CTX={value!r} matches no device. Devices:\n" + describe(candidates)
        )
    return Selection(device, f"PYOPENCL_CTX={value!r}")


def _pick(names: list[str], spec: str):
    if not spec:
        return names[0] if names else None
    if spec.isdigit():
        i = int(spec)
        return names[i] if i < len(names) else None
    return next((n for n in names if spec.lower() in n.lower()), None)


def describe(candidates: Sequence[Candidate], chosen: Candidate | None = None) -> str:
    """A table of devices, in enumeration order, with their rank."""
    order = {c.index: r for r, c in enumerate(rank(candidates))}
    lines = [f"  {'idx':>3}  {'rank':>4}  {'class':<19}  platform:device"]
    for c in candidates:
        mark = "*" if chosen is not None and c.index == chosen.index else " "
        lines.append(
            f"{mark} {c.index:>3}  {order[c.index]:>4}  {c.kind.name:<19}  {c.label}"
        )
    return "\n".join(lines)
