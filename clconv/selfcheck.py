"""`clconv check`: a small CNN's ops and gradients on the device against the reference."""
from __future__ import annotations

import time

import numpy as np

from . import functional as F
from . import reference as R
from .arrays import to_numpy
from .compare import scaled_error
from .runtime import current

TOLERANCE = 1e-4


def _cases(rng, batch):
    """(name, device thunk, reference thunk, scale thunk) for each op of a small CNN."""
    x = rng.standard_normal((batch, 3, 17, 17)).astype(np.float32)
    w1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    b1 = rng.standard_normal(8).astype(np.float32)
    w2 = rng.standard_normal((8, 2, 3, 3)).astype(np.float32)  # groups=4
    conv1 = dict(stride=1, padding=1)
    conv2 = dict(stride=2, padding=1, dilation=2, groups=4)
    h = np.ascontiguousarray(R.conv2d(x, w1, b1, **conv1), dtype=np.float32)
    g1 = rng.standard_normal(h.shape).astype(np.float32)
    pool = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    p, idx = R.max_pool2d(h, return_indices=True, **pool)
    gp = rng.standard_normal(p.shape).astype(np.float32)
    h2 = R.conv2d(h, w2, **conv2)
    g2 = rng.standard_normal(h2.shape).astype(np.float32)
    a = R.avg_pool2d(h, 2, count_include_pad=False, padding=1)
    ga = rng.standard_normal(a.shape).astype(np.float32)
    ax, aw, ab, ah, ag1, ag2 = (np.abs(v) for v in (x, w1, b1, h, g1, g2))
    return [
        ("conv2d 3x3 pad 1 + bias", lambda: F.conv2d(x, w1, b1, **conv1),
         lambda: h, lambda: R.conv2d(ax, aw, ab, **conv1)),
        ("conv2d stride 2, dilation 2, groups 4", lambda: F.conv2d(h, w2, **conv2),
         lambda: h2, lambda: R.conv2d(ah, np.abs(w2), **conv2)),
        ("conv2d_backward grad_input", lambda: F.conv2d_backward(g1, x, w1, **conv1)[0],
         lambda: R.conv2d_backward(g1, x, w1, **conv1)[0],
         lambda: R.conv2d_backward(ag1, ax, aw, **conv1)[0]),
        ("conv2d_backward grad_weight", lambda: F.conv2d_backward(g1, x, w1, **conv1)[1],
         lambda: R.conv2d_backward(g1, x, w1, **conv1)[1],
         lambda: R.conv2d_backward(ag1, ax, aw, **conv1)[1]),
        ("conv2d_backward grad_bias", lambda: F.conv2d_backward(g1, x, w1, **conv1)[2],
         lambda: R.conv2d_backward(g1, x, w1, **conv1)[2],
         lambda: R.conv2d_backward(ag1, ax, aw, **conv1)[2]),
        ("conv2d_backward groups grad_weight",
         lambda: F.conv2d_backward(g2, h, w2, **conv2)[1],
         lambda: R.conv2d_backward(g2, h, w2, **conv2)[1],
         lambda: R.conv2d_backward(ag2, ah, np.abs(w2), **conv2)[1]),
        ("max_pool2d 3x3/2 ceil", lambda: F.max_pool2d(h, **pool), lambda: p, None),
        ("max_pool2d_backward",
         lambda: F.max_pool2d_backward(gp, F.max_pool2d(h, return_indices=True, **pool)[1],
                                       h.shape),
         lambda: R.max_pool2d_backward(gp, idx, h.shape), None),
        ("avg_pool2d 2x2 pad 1, count_include_pad=False",
         lambda: F.avg_pool2d(h, 2, padding=1, count_include_pad=False), lambda: a, None),
        ("avg_pool2d_backward",
         lambda: F.avg_pool2d_backward(ga, h.shape, 2, padding=1, count_include_pad=False),
         lambda: R.avg_pool2d_backward(ga, h.shape, 2, padding=1, count_include_pad=False),
         None),
    ]


def run_checks(seed: int = 0, batch: int = 4, out=print) -> bool:
    """Run every case, print a table, and return whether all are within TOLERANCE."""
    runtime = current()
    profile = runtime.profile
    out(f"device: {profile.label} ({profile.kind.name}, driver {profile.driver_version})")
    out(f"why:    {runtime.selection_reason}")
    if profile.limits_name:
        out(f"limits: imitating {profile.limits_name} "
            f"(max work-group size {profile.max_work_group_size})")
    rng = np.random.default_rng(seed)
    all_ok = True
    out(f"\n{'op':<46} {'shape':<18} {'error':>9} {'ms':>8}  result")
    for name, device_op, reference_op, scale_op in _cases(rng, batch):
        start = time.perf_counter()
        result = to_numpy(device_op())  # to_numpy waits for the kernel
        elapsed_ms = (time.perf_counter() - start) * 1e3
        error = scaled_error(result, reference_op(), scale_op() if scale_op else None)
        ok = error <= TOLERANCE
        all_ok &= ok
        out(f"{name:<46} {str(result.shape):<18} {error:9.2e} {elapsed_ms:8.1f}  "
            f"{'ok' if ok else 'MISMATCH'}")
    out(f"\n{'all ops match' if all_ok else 'MISMATCH'}: the float64 reference within "
        f"{TOLERANCE:g} (sum-scaled); times include the first build of each kernel")
    return all_ok
