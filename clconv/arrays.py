"""Moving arrays between numpy and the device, and allocating outputs."""
from __future__ import annotations

import os

import numpy as np
import pyopencl.array as cla

ENV_POISON = "CLCONV_POISON_OUTPUTS"


def poison_outputs() -> bool:
    """Fill new outputs with NaN (float) or -1 (int) so elements a kernel fails to
    write show up in tests. Off by default: it costs a pass over memory."""
    return os.environ.get(ENV_POISON, "") not in ("", "0")


def empty(runtime, shape, dtype=np.float32) -> cla.Array:
    """A new device array from the runtime's memory pool."""
    out = cla.empty(runtime.queue, tuple(int(s) for s in shape), np.dtype(dtype),
                    allocator=runtime.allocator)
    if poison_outputs() and out.size:
        out.fill(np.nan if out.dtype.kind == "f" else -1)
    return out


def on_device(runtime, value, dtype=np.float32) -> cla.Array:
    """`value` (already validated) as an offset-0 device array on `runtime`."""
    if isinstance(value, cla.Array):
        # Kernels take plain buffers, so a view with an offset is copied once.
        return value if value.offset == 0 else value.copy()
    host = np.ascontiguousarray(value, dtype=dtype)
    return cla.to_device(runtime.queue, host, allocator=runtime.allocator)


def to_numpy(value) -> np.ndarray:
    """A numpy copy of a device array (numpy arrays pass through)."""
    if isinstance(value, cla.Array):
        return value.get()
    return np.asarray(value)
