"""Find `.cl` sources, build them with `-D` options, memoise programs and kernels, launch.

Programs are memoised per (context, file, options); each kernel object is retrieved
once. Compiled binaries are cached on disk by POCL itself on POCL devices, and by
pyopencl's `Program.build` cache elsewhere (see `uses_pyopencl_cache`), so this module
keeps no cache of its own on disk.

`CLCONV_BUILD_LOG=FILE` appends one JSON line per program built (file, options, device),
the list of programs that `pi/vc4c/compile-programs.py` compiles with VC4C.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import pyopencl as cl
import pyopencl.array as cla

from . import caches
from .cpu_class import arm_architecture
from .device import DeviceKind, DeviceProfile, classify, is_pocl
from .params import INT32_MAX
from .validation import check_launch

BASE_OPTIONS = ("-cl-std=CL1.2",)
# OpenCL lets a float divide or sqrt be 2.5 / 3 ulp off unless a program is built with
# this option (NVIDIA's default is off; POCL's is exact anyway): torch's results are
# exact, and an average pool's sum / n must match them bit for bit.
EXACT_DIVIDE_OPTION = "-cl-fp32-correctly-rounded-divide-sqrt"
ENV_BUILD_LOG = "CLCONV_BUILD_LOG"

# Work-items per group for the simple one-item-per-output kernels: enough to fill the
# SIMD lanes of a CPU or GPU, few enough not to pad tiny launches. Always capped by
# the device profile (12 on VideoCore IV) and by the kernel's own limit.
DEFAULT_GROUP_SIZE = 64


class KernelBuildError(RuntimeError):
    """An OpenCL program failed to build; carries the file, the options and the log."""

    def __init__(self, path: Path, options: tuple[str, ...], log: str):
        self.path, self.options, self.log = path, options, log
        super().__init__(
            f"building {path} failed\noptions: {' '.join(options)}\nbuild log:\n{log}"
        )


def kernel_dir() -> Path:
    """Directory of the `.cl` sources.

    A wheel installs them as `clconv/kernels_cl`; a source checkout or an editable
    install has them at the top level, beside `clconv/`.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "kernels_cl", here.parent / "kernels_cl"):
        if (candidate / "conv2d.cl").is_file():
            return candidate
    raise FileNotFoundError(
        f"clconv kernels not found in {here / 'kernels_cl'} or {here.parent / 'kernels_cl'}; "
        "the package is installed incompletely"
    )


def profile_defines(profile: DeviceProfile) -> dict[str, int]:
    """Device limits every kernel may size itself by."""
    return {
        "CLCONV_MAX_WORK_GROUP_SIZE": profile.max_work_group_size,
        "CLCONV_LOCAL_MEM_SIZE": profile.local_mem_size,
    }


def build_options(profile: DeviceProfile, defines: Mapping[str, object]) -> tuple[str, ...]:
    merged = {**profile_defines(profile), **defines}
    exact = (EXACT_DIVIDE_OPTION,) if profile.correctly_rounded_divide_sqrt else ()
    return (BASE_OPTIONS + exact
            + tuple(f"-D{name}={value}" for name, value in sorted(merged.items())))


_lock = threading.Lock()
_programs: dict[tuple, dict[str, cl.Kernel]] = caches.memo("build.programs")


def get_kernel(runtime, filename: str, kernel_name: str,
               defines: Mapping[str, object] | None = None) -> cl.Kernel:
    """The kernel `kernel_name` from `kernels_cl/filename` built for `runtime`.

    Memoised on the call's own arguments first: layers ask for their kernels on every
    call, and formatting the build options each time costs more than some launches."""
    fast_key = (runtime.context, runtime.profile, filename, kernel_name,
                tuple(defines.items()) if defines else ())
    kernel = _kernels.get(fast_key)
    if kernel is None:
        kernel = _kernels[fast_key] = _get_kernel(runtime, filename, kernel_name, defines)
    return kernel


_kernels: dict = caches.memo("build.kernels")


def _get_kernel(runtime, filename, kernel_name, defines) -> cl.Kernel:
    options = build_options(runtime.profile, defines or {})
    key = (runtime.context, filename, options)
    with _lock:
        kernels = _programs.get(key)
        if kernels is None:
            kernels = _build(runtime.context, kernel_dir() / filename, options)
            _programs[key] = kernels
    try:
        return kernels[kernel_name]
    except KeyError:
        raise KeyError(f"{filename} has no kernel {kernel_name!r}; it has {sorted(kernels)}") from None


def uses_pyopencl_cache(context: cl.Context) -> bool:
    """Whether builds go through pyopencl's binary cache: not on POCL, which caches its
    builds itself (pyopencl >= 2024 skips its cache there too; Debian bookworm's 2022.3
    does not). That cache reads CL_PROGRAM_BINARIES, for which POCL compiles every
    kernel of the program once more, for any local size, and serialises them all: a
    second compile that is seconds per kernel on a Pi, and the step where 32-bit ARM
    POCL 3.1 crashed now and then under qemu-user with a smashed stack."""
    return not is_pocl(context.devices[0].platform.name)


def include_dir(directory: Path) -> str:
    """The -I argument for `directory`. pyopencl joins the options with spaces and POCL
    splits them there, quotes or not, so a path with whitespace goes through a symlink
    in a fresh temporary directory (removed at exit; the link, not what it points to)."""
    text = str(directory)
    if not any(c.isspace() for c in text):
        return text
    link = _include_links.get(text)
    if link is None:
        base = tempfile.mkdtemp(prefix="clconv-include-")
        atexit.register(shutil.rmtree, base, True)
        if any(c.isspace() for c in base):
            raise ValueError(f"kernel directory: {text!r} contains whitespace, which the "
                             f"OpenCL compiler cannot take in -I, and so does the temporary "
                             f"directory {base!r} meant to link to it (set TMPDIR)")
        link = _include_links[text] = os.path.join(base, "kernels_cl")
        os.symlink(directory, link, target_is_directory=True)
    return link


_include_links: dict = caches.memo("build.include_links")


# VC4C, VC4CL's compiler, compiles a program's kernels on a thread pool, and near its
# register limit the same program compiles on one try and fails on the next. A failed
# build on VC4CL is tried this many times; the VC4C gate (pi/vc4c/compile-programs.py,
# --tries) proves that every program of the VideoCore IV profile compiles within them.
VC4CL_BUILD_TRIES = 5


def build_tries(device) -> int:
    """How many times a failed build is tried on `device` (a pyopencl.Device)."""
    kind = classify(device.platform.name, device.name, device.type)
    return VC4CL_BUILD_TRIES if kind == DeviceKind.VC4CL else 1


# POCL as Debian builds it for ARM (3.1 in bookworm, so Raspberry Pi OS) compiles a
# program's functions with fewer target features than its builtin library's carry (on
# aarch64 none against "+neon,+outline-atomics,+v8a"; on armhf it lacks the library's
# "+strict-align,+vfp3d16,+vfp3d16sp"). LLVM inlines no callee with features its caller
# lacks, so every vload4, fma, min and select stayed a call, and the GEMM spilled its
# accumulators around each (hundreds of stack loads and stores where x86's build has
# none; docs/performance.md). With the library's features on every function of the
# program they inline. Both sets are the floor of the host's architecture: ARMv8-A, and
# the VFPv3-D16 that Debian's armhf requires (the Pi 2-5 cores have it; an ARMv6 Pi 0/1,
# armv6l, is left as it is). `#line 1` keeps the compiler's line
# numbers the file's.
TARGET_FEATURES = {"aarch64": "v8a,fp-armv8,neon,outline-atomics",
                   "armhf": "strict-align,vfp3d16,vfp3d16sp"}


def host_arm() -> str | None:
    """'aarch64' or 'armhf' (32-bit ARM, ARMv7 or later) for an ARM host, else None."""
    arch = arm_architecture(platform.machine())
    return arch if arch in TARGET_FEATURES else None


def program_source(device: cl.Device, source: str) -> str:
    """`source` as built for `device`: on POCL's CPU device of an ARM host, inside a
    `#pragma clang attribute` giving every function TARGET_FEATURES (see there);
    elsewhere unchanged."""
    arm = host_arm()
    if arm is None or not (device.type & cl.device_type.CPU and is_pocl(device.platform.name)):
        return source
    return (f'#pragma clang attribute push (__attribute__((target("{TARGET_FEATURES[arm]}"))),'
            f' apply_to = function)\n#line 1\n{source}\n#pragma clang attribute pop\n')


def _build(context: cl.Context, path: Path, options: tuple[str, ...]) -> dict[str, cl.Kernel]:
    source = program_source(context.devices[0], path.read_text())
    all_options = list(options) + ["-I", include_dir(path.parent)]
    cache_dir = None if uses_pyopencl_cache(context) else False
    tries = build_tries(context.devices[0])
    for attempt in range(1, tries + 1):
        try:
            with _compiler_chatter() as chatter:
                program = cl.Program(context, source).build(options=all_options,
                                                            cache_dir=cache_dir)
            break
        except cl.Error as error:
            if attempt == tries:
                raise KernelBuildError(path, tuple(all_options), str(error)) from None
    logs = [program.get_build_info(d, cl.program_build_info.LOG) for d in context.devices]
    real = _real_compiler_output("\n".join(logs + chatter))
    if real:
        warnings.warn(f"{path.name}: the OpenCL compiler said:\n{real}", cl.CompilerWarning,
                      stacklevel=2)
    log_build(path.name, options, context.devices[0].name.strip())
    return {kernel.function_name: kernel for kernel in program.all_kernels()}


def log_build(filename: str, options: tuple[str, ...], device_name: str) -> None:
    """Append {"file", "options", "device"} as one JSON line to `CLCONV_BUILD_LOG`, if set.
    One O_APPEND write per line, so threads and processes sharing the file never
    interleave their lines."""
    path = os.environ.get(ENV_BUILD_LOG, "").strip()
    if not path:
        return
    line = json.dumps({"file": filename, "options": list(options), "device": device_name})
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


# Compiler output that says nothing about clconv's code: clang's tally of warnings, which
# POCL's clang prints straight to the process's stderr on every first build;
# NVIDIA's note (drivers 550 and later) on every kernel of every program; and clang's
# -Wpsabi note where a float16 (512-bit) value is passed to or returned from a function
# on a CPU without AVX-512 (POCL on an AVX2 CPU: one note per float16 helper in every
# program that has one): it concerns calls between separately compiled objects, and a
# program's functions are all compiled together, for the one target.
_BENIGN_LINE = re.compile(
    r"\s*(\d+ warnings? generated\.?"
    r"|\(\): Warning: Function \w+ is a kernel, so overriding noinline attribute\."
    r" The function may be inlined when called\."
    r"|warning: .*: AVX vector (argument|return) of type '[^']+' \(vector of \d+ '\w+'"
    r" values\) without '\w+' enabled changes the ABI)?\s*")


def _real_compiler_output(text: str) -> str:
    """`text` without benign lines and repeats (POCL logs each warning twice)."""
    lines = [line for line in text.splitlines() if not _BENIGN_LINE.fullmatch(line)]
    return "\n".join(dict.fromkeys(lines))


@contextlib.contextmanager
def _compiler_chatter():
    """Collect, instead of showing, what a build writes to file descriptor 2 (the driver's
    compiler writes there directly) and pyopencl's generic CompilerWarning; _build
    shows what of it is real once, with the file name."""
    collected: list[str] = []
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield collected
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            collected.append(sink.read().decode(errors="replace"))
    for warning in caught:  # anything but the build's own chatter is shown as it was
        if not issubclass(warning.category, cl.CompilerWarning):
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)


def _as_args(args) -> list:
    """Launch arguments as pyopencl takes them: device arrays as their buffers (callers
    pass offset-0 arrays, see arrays.on_device); scalars as they are, since pyopencl
    packs plain Python numbers fastest once the kernel's scalar types are declared."""
    return [a.data if isinstance(a, cla.Array) else a for a in args]


def scalar_dtype(value):
    """The OpenCL type a scalar argument is declared as: Python ints and bools, numpy
    int64 and uint64 (shape arithmetic) are int; Python floats and numpy float64 are
    float; other numpy scalars keep their own type (e.g. uint32 for a seed); None for
    buffers and local memory."""
    if isinstance(value, (bool, int, np.int64, np.uint64)):
        return np.dtype(np.int32)
    if isinstance(value, (float, np.float64)):
        return np.dtype(np.float32)
    if isinstance(value, np.generic):
        return value.dtype
    return None


def group_size(limit: int, n_items: int) -> int:
    """`limit` work-items, or for launches smaller than that the largest power of two
    that fits: POCL compiles a kernel once per distinct local size, so small launches
    must not each bring a new size."""
    limit = max(1, int(limit))
    if n_items >= limit:
        return limit
    return 1 << (max(1, int(n_items)).bit_length() - 1)


def group_2d(size: int, across: int, down: int) -> tuple[int, int]:
    """A local size of up to `size` work-items over an (across, down) grid: as many
    across as the grid has, the rest down. launch_grid still shrinks it to the device's
    and the kernel's limits."""
    lx = min(size, across)
    return lx, max(1, min(size // lx, down))


# Work-groups a grid should give each compute unit: fewer leaves some idle while others
# finish (a device runs a group on one unit; POCL on a CPU runs its work-items in turn).
GROUPS_PER_UNIT = 4


def spread_groups(profile, local: tuple[int, int], across: int, down: int,
                  planes: int = 1) -> tuple[int, int]:
    """`local` (lx, ly) over an (across, down, planes) grid, halved (down first) until
    the grid has GROUPS_PER_UNIT groups per compute unit or the group is one item."""
    lx, ly = local

    def groups():
        return planes * -(-across // lx) * -(-down // ly)

    while groups() < GROUPS_PER_UNIT * profile.compute_units and lx * ly > 1:
        if ly > 1:
            ly //= 2
        else:
            lx //= 2
    return lx, ly


# Work-items a launch whose work-items each walk a band of rows (the pooling kernels
# that keep rows from one output row to the next) should have for POCL's threads to
# share it evenly.
BANDED_ITEMS = 64


def row_bands(rows: int, items_per_band: int) -> tuple[int, int]:
    """(band, bands): `rows` split into bands of `band` rows, as few as give at least
    BANDED_ITEMS work-items at items_per_band per band (each band's work-items start
    without the rows a band before would have kept)."""
    bands = min(rows, max(1, -(-BANDED_ITEMS // items_per_band)))
    band = -(-rows // bands)
    return band, -(-rows // band)


def launch(runtime, kernel: cl.Kernel, n_items: int, *args) -> cl.Event:
    """Run `kernel` over `n_items` work-items (1-D), local size from the device profile.

    The global size is rounded up to a multiple of the local size; kernels receive
    `n_items` as their first argument and return early past it.
    """
    if not 0 <= n_items <= INT32_MAX:
        check_launch((n_items,))
    profile = runtime.profile
    local = group_size(min(DEFAULT_GROUP_SIZE, profile.max_work_group_size,
                           profile.max_work_item_sizes[0], _kernel_limit(runtime, kernel)),
                       n_items)
    global_size = -(-n_items // local) * local
    return enqueue(runtime, kernel, (global_size,), (local,),
                   [n_items] + _as_args(args))


def resolve_local(runtime, kernel: cl.Kernel, items, local) -> tuple[int, ...]:
    """The local size `launch_grid` will use for `local` over `items`: shrunk to the
    device profile's and the kernel's work-group limits, powers of two for small
    launches. Kernels that size local memory by it ask for it first."""
    return _launch_shape(runtime, kernel, items, local)[0]


def _launch_shape(runtime, kernel, items, local):
    """(local size, global size) for `local` over `items`. Memoised: the same launch
    shapes recur on every call of a layer (numpy and Python ints hash alike)."""
    key = (kernel, tuple(items), tuple(local))
    shape = _launch_shapes.get(key)
    if shape is None:
        resolved = _resolve_local(runtime, kernel, [int(n) for n in items],
                                  [int(n) for n in local])
        global_size = tuple(-(-int(n) // l) * l for n, l in zip(items, resolved))
        check_launch(global_size)
        shape = _launch_shapes[key] = (resolved, global_size)
    return shape


_launch_shapes: dict = caches.memo("build.launch_shapes")
_kernel_limits: dict = caches.memo("build.kernel_limits")


def _kernel_limit(runtime, kernel: cl.Kernel) -> int:
    """The most work-items per group this kernel allows on the runtime's device."""
    limit = _kernel_limits.get(kernel)
    if limit is None:
        device = runtime.context.devices[0]
        limit = _kernel_limits[kernel] = kernel.get_work_group_info(
            cl.kernel_work_group_info.WORK_GROUP_SIZE, device)
    return limit


def _resolve_local(runtime, kernel, items, local) -> tuple[int, ...]:
    profile = runtime.profile
    limit = max(1, min(profile.max_work_group_size, _kernel_limit(runtime, kernel)))
    sizes = profile.max_work_item_sizes
    resolved = [group_size(min(int(l), sizes[min(d, len(sizes) - 1)]), int(n))
                for d, (l, n) in enumerate(zip(local, items))]
    while int(np.prod(resolved)) > limit:  # shrink the largest dimension until it fits
        d = int(np.argmax(resolved))
        resolved[d] = max(1, resolved[d] // 2)
    return tuple(resolved)


def launch_grid(runtime, kernel: cl.Kernel, items, local, *args) -> cl.Event:
    """Run `kernel` over an N-D grid of `items` work-items with local size `local`
    (as `resolve_local` shrinks it); the global size is each item count rounded up to
    a multiple of the local size (kernels return early past the end). Arguments are
    passed as `_as_args` makes them.
    """
    local, global_size = _launch_shape(runtime, kernel, items, local)
    return enqueue(runtime, kernel, global_size, local, _as_args(args))


_typed: set = caches.memo("build.typed", set)  # kernels whose scalar argument types pyopencl has been told


def enqueue(runtime, kernel: cl.Kernel, global_size, local_size, args) -> cl.Event:
    """The one point where clconv enqueues a kernel (`launch` and `launch_grid` end here;
    tests/test_validation.py patches it to prove bad input launches nothing), with
    pyopencl's fast argument path.

    Without declared scalar types pyopencl sets each numpy scalar argument through a
    slow generic path (about 150 us per launch for 20 arguments with POCL on these
    machines, more than many small kernels run); with them it packs plain Python
    numbers directly. The types are fixed per kernel, so the first launch declares them
    from its arguments (see scalar_dtype).
    """
    try:
        with runtime.lock:  # arguments are set on the shared kernel object, then enqueued
            if kernel not in _typed:
                kernel.set_scalar_arg_dtypes([scalar_dtype(a) for a in args])
                _typed.add(kernel)
            event = kernel(runtime.queue, global_size, local_size, *args)
            _record(runtime, ("kernel", kernel, global_size, local_size, args))
            return event
    except (RuntimeError, OverflowError) as error:  # pyopencl's std::bad_cast, for one
        _check_int_args(kernel, args, error)
        raise


def sub_buffer_alignment(device: cl.Device) -> int:
    """The bytes a sub-buffer's origin must be a multiple of on `device`
    (CL_DEVICE_MEM_BASE_ADDR_ALIGN is in bits; POCL asks for 128 bytes, NVIDIA 512)."""
    return max(4, device.mem_base_addr_align // 8)


def _parent_and_offset(buffer) -> tuple:
    """(the buffer a sub-buffer lies in, its byte offset there); (buffer, 0) otherwise."""
    parent = buffer.get_info(cl.mem_info.ASSOCIATED_MEMOBJECT)
    return (buffer, 0) if parent is None else (parent, buffer.get_info(cl.mem_info.OFFSET))


def enqueue_copy(runtime, dest, source, **region) -> cl.Event:
    """The one device-to-device copy clconv enqueues (buffers; `region` as
    pyopencl.enqueue_copy takes it: byte_count and offsets, or a rectangle)."""
    if "region" in region:
        # A rectangle copies between the sub-buffers' parents, at their offsets: POCL
        # 3.1's rectangular copy from or into a sub-buffer crashed the process.
        (dest, dst_at), (source, src_at) = _parent_and_offset(dest), _parent_and_offset(source)
        region["dst_origin"] = (region["dst_origin"][0] + dst_at, *region["dst_origin"][1:])
        region["src_origin"] = (region["src_origin"][0] + src_at, *region["src_origin"][1:])
    with runtime.lock:
        event = cl.enqueue_copy(runtime.queue, dest, source, **region)
        _record(runtime, ("copy", dest, source, region))
        return event


# this thread's (runtime, list) while it records a run (see recording)
_recording = threading.local()


def _record(runtime, entry) -> None:
    active = getattr(_recording, "active", None)
    if active is not None and active[0] is runtime:
        active[1].append(tuple(_handle(item) for item in entry))


def _handle(item):
    """A buffer as a new handle on the same memory (retained: it lives as long as the
    handle); anything else as it is. A recorded launch then does not keep its arrays'
    pooled buffers alive, so each goes back to the memory pool when the step that made
    it lets it go, and a later step of the run is handed the same memory, as in a run
    that is not recorded: the replayed run's buffers are then as few as liveness
    allows, and the last ones freed, still in the caches, are the next ones written."""
    if isinstance(item, cl.MemoryObjectHolder):
        return cl.Buffer.from_int_ptr(item.int_ptr, retain=True)
    if isinstance(item, (list, tuple)):
        return type(item)(_handle(a) for a in item)
    return item


@contextlib.contextmanager
def recording(runtime):
    """Within the block, every kernel launch and buffer copy enqueued on `runtime` is also
    appended, in order, to the list it yields: ("kernel", kernel, global size, local size,
    arguments) or ("copy", dest, source, region), each buffer in them a retained handle
    of its own (_handle), which keeps the memory for the list but not the array's pooled
    buffer from its pool. Only this thread's work is recorded,
    and the runtime's lock is held throughout, so no other thread enqueues on it
    meanwhile (onnx/replay.py replays the list)."""
    with runtime.lock:
        previous, entries = getattr(_recording, "active", None), []
        _recording.active = (runtime, entries)
        try:
            yield entries
        finally:
            _recording.active = previous


def _check_int_args(kernel, args, error) -> None:
    """Turn a launch that failed on an int argument past int32 into a ValueError that
    names the kernel, the argument and the value (params.pair stops the usual ones)."""
    for position, value in enumerate(args, 1):
        if isinstance(value, (int, np.integer)) and not -INT32_MAX - 1 <= value <= INT32_MAX:
            raise ValueError(f"{kernel.function_name}: argument {position} is {value}, "
                             f"outside the kernels' int32 range") from error
