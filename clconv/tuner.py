"""Time the valid variants and their tunables for a layer list and keep the fastest.

Used by `clconv tune` only: ops never tune on their own. Each candidate is run once to
build and check it (a candidate whose result differs from the direct kernel's is
dropped), then timed as the best of a few rounds.
"""
from __future__ import annotations

import random
import time

import numpy as np
import pyopencl as cl

from . import algos, tuning
from .build import KernelBuildError
from .arrays import empty, on_device
from .compare import scaled_error

OPS = ("forward", "grad_input", "grad_weight")


def candidates(profile, geo, op, max_per_variant: int, seed: int = 0):
    """[(variant, params)]: each variant's defaults plus a seeded sample of its space."""
    rng = random.Random(seed)
    out = []
    for variant in algos.VARIANTS.values():
        if op not in variant.ops:
            continue
        default = algos.params_for(profile, variant, geo, op)
        space = [p for p in variant.space(profile, geo, op)
                 if algos.valid(profile, variant, geo, op, p) and p != default]
        rng.shuffle(space)
        picked = ([default] if algos.valid(profile, variant, geo, op, default) else []) + space
        out += [(variant, p) for p in picked[:max_per_variant]]
    return out


def _buffers(rt, geo, rng):
    x = rng.standard_normal(geo.input_shape).astype(np.float32)
    w = rng.standard_normal(geo.weight_shape).astype(np.float32)
    g = rng.standard_normal(geo.output_shape).astype(np.float32)
    return on_device(rt, x), on_device(rt, w), on_device(rt, g)


def _call(rt, variant, params, geo, op, bufs):
    x, w, g = bufs
    if op == "forward":
        out = empty(rt, geo.output_shape)
        variant.run[op](rt, geo, params, x, w, None, out)
    elif op == "grad_input":
        out = empty(rt, geo.input_shape)
        variant.run[op](rt, geo, params, g, w, out)
    else:
        out = empty(rt, geo.weight_shape)
        variant.run[op](rt, geo, params, x, g, out)
    return out


def time_candidate(rt, variant, params, geo, op, bufs, rounds=3, min_time=0.02):
    _call(rt, variant, params, geo, op, bufs)
    rt.queue.finish()
    start = time.perf_counter()
    _call(rt, variant, params, geo, op, bufs)
    rt.queue.finish()
    one = max(time.perf_counter() - start, 1e-6)
    reps = max(1, min(20, int(min_time / one)))
    best = one
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            _call(rt, variant, params, geo, op, bufs)
        rt.queue.finish()
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def tune_layer(rt, geo, op, max_per_variant=12, rounds=3, progress=None, seed=0):
    """(best entry, [all measurements]) for one op of one layer."""
    bufs = _buffers(rt, geo, np.random.default_rng(seed))
    reference = _call(rt, algos.VARIANTS["direct"], {}, geo, op, bufs).get()
    scale = max(float(np.abs(reference).max()), 1e-30)
    measured = []
    for variant, params in candidates(rt.profile, geo, op, max_per_variant, seed):
        try:
            out = _call(rt, variant, params, geo, op, bufs).get()
            ok = scaled_error(out, reference, scale) <= 1e-3
            seconds = time_candidate(rt, variant, params, geo, op, bufs, rounds) if ok else None
            error = None if ok else "result differs from the direct kernel"
        except (KernelBuildError, cl.Error) as failure:  # e.g. out of resources on a Pi
            ok, seconds, error = False, None, f"{type(failure).__name__}: {failure}"[:200]
        measured.append({"algo": variant.name, "params": params, "ms": None if seconds is None
                         else seconds * 1e3, "ok": ok, "error": error})
        if progress is not None:
            progress(variant.name, params, seconds, error)
    good = [m for m in measured if m["ok"]]
    best = min(good, key=lambda m: m["ms"])
    return {"algo": best["algo"], "params": best["params"], "ms": best["ms"]}, measured


def tune(rt, layers, ops=OPS, max_per_variant=12, rounds=3, progress=None, save=True):
    """Tune every (layer, op); store the winners in the device's database."""
    entries = {}
    report = []
    for layer in layers:
        geo = layer.geometry()
        for op in ops:
            best, measured = tune_layer(rt, geo, op, max_per_variant, rounds,
                                        progress=progress)
            entries[tuning.layer_key(geo, op)] = dict(best, layer=layer.name)
            report.append((layer.name, op, best, measured))
    path = tuning.save(rt.profile, entries) if save else None
    return report, path
