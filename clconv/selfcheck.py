"""`clconv check`: every op of the op table (clconv.optable) and its gradient on the
device, one seeded sample each, against the float64 reference."""
from __future__ import annotations

import time

import numpy as np

from .arrays import to_numpy
from .compare import outputs_error
from .optable import OPS, first, grad_call, randn
from .runtime import current

TOLERANCE = 1e-4


def _numpy(output):
    """An op's output (an array or a tuple of them, None where masked off) on the host;
    to_numpy waits for the kernels."""
    if isinstance(output, tuple):
        return tuple(None if o is None else to_numpy(o) for o in output)
    return to_numpy(output)


GRADIENTS = ("grad_input", "grad_weight", "grad_bias")  # a gradient's outputs, in order


def _cases(rng, batch, ops=None):
    """(name, device thunk, expected, scale, exact) for each op of the table (or those
    named in `ops`) and its gradient (named as the functional op: conv2d_backward), on
    one seeded sample each."""
    cases = []
    for spec in OPS:
        if ops is not None and spec.name not in ops:
            continue
        args, kwargs = spec.sample(rng, batch)
        expected = spec.reference(*args, **kwargs)
        scale = spec.scale(args, kwargs, expected) if spec.scale else None
        cases.append((spec.name, lambda s=spec, a=args, k=kwargs: s.op(*a, **k), expected,
                      scale, spec.exact))
        if spec.grad is None:
            continue
        g = np.asarray(randn(rng, np.shape(first(expected))))
        gargs, gkwargs = grad_call(spec, args, kwargs, g)
        gexpected = spec.grad.reference(*gargs, **gkwargs)
        gscale = spec.grad.scale(gargs, gkwargs, gexpected) if spec.grad.scale else None
        cases.append((spec.grad.op.__name__,
                      lambda s=spec, a=gargs, k=gkwargs: s.grad.op(*a, **k), gexpected,
                      gscale, False))
    return cases


def _shape(output):
    return str(np.shape(first(output)))


def run_checks(seed: int = 0, batch: int = 4, out=print, ops=None) -> bool:
    """Run every case (of the ops named in `ops`, a collection of op table names; None:
    all), print a table, and return whether all are within TOLERANCE."""
    runtime = current()
    profile = runtime.profile
    out(f"device: {profile.label} ({profile.kind.name}, driver {profile.driver_version})")
    out(f"why:    {runtime.selection_reason}")
    if profile.limits_name:
        out(f"limits: imitating {profile.limits_name} "
            f"(max work-group size {profile.max_work_group_size})")
    rng = np.random.default_rng(seed)
    all_ok = True
    out(f"\n{'op':<40} {'shape':<18} {'error':>9} {'ms':>8}  result")
    for name, device_op, expected, scale, exact in _cases(rng, batch, ops):
        start = time.perf_counter()
        result = _numpy(device_op())
        elapsed_ms = (time.perf_counter() - start) * 1e3
        rows = [(name, result, expected, scale)]
        if isinstance(expected, tuple) and name.endswith("_backward"):  # a row per gradient
            scales = scale if isinstance(scale, tuple) else (scale,) * len(expected)
            rows = [(f"{name} {label}", r, e, s)
                    for label, r, e, s in zip(GRADIENTS, result, expected, scales)
                    if e is not None]
        for row, got, want, row_scale in rows:
            error = outputs_error(got, want, row_scale, exact)
            ok = error <= TOLERANCE
            all_ok &= ok
            out(f"{row:<40} {_shape(got):<18} {error:9.2e} {elapsed_ms:8.1f}  "
                f"{'ok' if ok else 'MISMATCH'}")
    out(f"\n{'all ops match' if all_ok else 'MISMATCH'}: the float64 reference within "
        f"{TOLERANCE:g} (sum-scaled; selections and indices exactly); times include the "
        f"first build of each kernel")
    return all_ok
