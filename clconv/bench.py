"""`clconv bench`: GFLOP/s of conv2d forward and forward+backward on a fixed layer suite,
with PyTorch CPU and tinygrad (DEV=CL) measured in the same run when installed.

Times are the best of several rounds; in each round every implementation runs in turn,
so the ratios are taken side by side on a shared, noisy machine. FLOPs (as in
docs/performance.md): 2*N*K*Ho*Wo*(C/groups)*kh*kw for the forward pass, three times that for
forward+backward (forward, grad_input, grad_weight; grad_bias is not counted).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np

from . import algos, functional as F
from .arrays import on_device
from .atomic_file import save_figure
from .geometry import conv_geometry
from .runtime import current


@dataclass(frozen=True)
class Layer:
    name: str
    N: int
    C: int
    H: int
    K: int
    k: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1

    @property
    def input_shape(self):
        return (self.N, self.C, self.H, self.H)

    @property
    def weight_shape(self):
        return (self.K, self.C // self.groups, self.k, self.k)

    @property
    def kwargs(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)

    def geometry(self):
        return conv_geometry(self.input_shape, self.weight_shape, **self.kwargs)

    def flops(self) -> int:
        g = self.geometry()
        return 2 * g.N * g.K * g.Ho * g.Wo * (g.C // g.groups) * g.kh * g.kw


SUITE = [
    Layer("lenet-conv1", 16, 1, 28, 6, 5),
    Layer("resnet18-3x3-56", 1, 64, 56, 64, 3, padding=1),
    Layer("resnet18-3x3-28", 1, 128, 28, 128, 3, padding=1),
    Layer("resnet18-3x3-14", 1, 256, 14, 256, 3, padding=1),
    Layer("resnet18-3x3-7", 1, 512, 7, 512, 3, padding=1),
    Layer("mobilenet-1x1-28", 1, 128, 28, 256, 1),
    Layer("mobilenet-1x1-14", 1, 512, 14, 512, 1),
    Layer("mobilenet-dw-28", 1, 256, 28, 256, 3, padding=1, groups=256),
    Layer("mobilenet-dw-s2-56", 1, 128, 56, 128, 3, stride=2, padding=1, groups=128),
    Layer("vgg-3x3-b4", 4, 128, 28, 128, 3, padding=1),
    Layer("stride2-3x3-56", 1, 64, 56, 128, 3, stride=2, padding=1),
    Layer("dilated-3x3-28", 1, 128, 28, 128, 3, padding=2, dilation=2),
]
SMOKE = [Layer("tiny-3x3", 1, 3, 8, 4, 3, padding=1)]
SUITES = {"default": SUITE, "smoke": SMOKE}


def pick_layers(suite: str = "default", names=None):
    layers = SUITES[suite]
    if names:
        known = {l.name: l for l in SUITE + SMOKE}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown}; known: {sorted(known)}")
        layers = [known[n] for n in names]
    return layers


# ---- implementations: each returns (forward(), forward_backward(), sync()) -------------

def _clconv_impl(layer, arrays):
    rt = current()
    x, w, b, g = arrays
    kw = layer.kwargs

    def forward():
        return F.conv2d(x, w, b, **kw)

    def forward_backward():
        F.conv2d(x, w, b, **kw)
        return F.conv2d_backward(g, x, w, output_mask=(True, True, True), **kw)

    return forward, forward_backward, rt.queue.finish


def _torch_impl(layer, host):
    import torch

    x, w, b, g = (torch.from_numpy(a) for a in host)
    xr, wr, br = (t.clone().requires_grad_(True) for t in (x, w, b))
    kw = layer.kwargs

    def forward():
        with torch.no_grad():
            return torch.nn.functional.conv2d(x, w, b, **kw)

    def forward_backward():
        xr.grad = wr.grad = br.grad = None
        y = torch.nn.functional.conv2d(xr, wr, br, **kw)
        y.backward(g)

    return forward, forward_backward, lambda: None


def _tinygrad_impl(layer, host):
    from tinygrad import Device, Tensor, TinyJit

    x, w, b, g = (Tensor(a).realize() for a in host)
    kw = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
              groups=layer.groups)

    @TinyJit
    def forward_jit(x, w, b):
        return x.conv2d(w, b, **kw).realize()

    xr, wr, br = (Tensor(a).realize() for a in host[:3])
    for t in (xr, wr, br):
        t.requires_grad = True

    def _fb(x, w, b, g):
        y = x.conv2d(w, b, **kw)
        y.backward(g)
        return Tensor.realize(x.grad, w.grad, b.grad)

    fb_jit = TinyJit(_fb)
    device = Device[Device.DEFAULT]

    def forward():
        return forward_jit(x, w, b)

    def forward_backward():
        xr.grad = wr.grad = br.grad = None
        return fb_jit(xr, wr, br, g)

    return forward, forward_backward, device.synchronize


def peers_available(want_torch=True, want_tinygrad=True):
    """{name: None if usable else the reason it is skipped}."""
    import importlib.util
    import os

    status = {}
    if want_torch:
        status["torch"] = None if importlib.util.find_spec("torch") else \
            "torch not installed (pip install torch)"
    if want_tinygrad:
        if importlib.util.find_spec("tinygrad") is None:
            status["tinygrad"] = "tinygrad not installed (pip install tinygrad; needs libOpenCL)"
        else:
            os.environ.setdefault("DEV", "CL")
            try:
                from tinygrad import Device
                Device[Device.DEFAULT]
                status["tinygrad"] = None
            except Exception as error:  # no OpenCL for tinygrad, etc.
                status["tinygrad"] = f"tinygrad DEV=CL unusable: {error}"
    return status


def _best_times(impls, which: int, rounds: int, min_time: float):
    """{name: best seconds per call}; every round runs each implementation in turn."""
    best = {name: float("inf") for name in impls}
    calls = {}
    for name, funcs in impls.items():  # warm up (builds, JIT) and size the repetitions
        fn, sync = funcs[which], funcs[2]
        for _ in range(2):
            fn()
        sync()
        start = time.perf_counter()
        fn()
        sync()
        one = max(time.perf_counter() - start, 1e-6)
        # enough calls to fill min_time: short bursts time the queue's start and drain
        # (a layer of 50 us ran 20 % slower per call in bursts of 50 than of 1000)
        calls[name] = max(1, min(1000, int(min_time / one)))
    for _ in range(rounds):
        for name, funcs in impls.items():
            fn, sync = funcs[which], funcs[2]
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            sync()
            best[name] = min(best[name], (time.perf_counter() - start) / calls[name])
    return best


def run_layer(layer, peers, rounds=3, min_time=0.05, seed=0):
    """Measure one layer; returns a dict of GFLOP/s, ratios, algorithms and memory."""
    rt = current()
    rng = np.random.default_rng(seed)
    geo = layer.geometry()
    host = [rng.standard_normal(s).astype(np.float32)
            for s in (layer.input_shape, layer.weight_shape, (layer.K,), geo.output_shape)]
    pool = rt.allocator
    pool.free_held()
    arrays = [on_device(rt, a) for a in host]
    impls = {"clconv": _clconv_impl(layer, arrays)}
    errors = {}
    for name, reason in peers.items():
        if reason is not None:
            continue
        try:
            impls[name] = (_torch_impl if name == "torch" else _tinygrad_impl)(layer, host)
        except Exception as error:
            errors[name] = f"{type(error).__name__}: {error}"
    result = {"layer": layer.name, "shape": asdict(layer), "flops": layer.flops()}
    for which, label, factor in ((0, "fwd", 1), (1, "fwdbwd", 3)):
        try:
            times = _best_times(impls, which, rounds, min_time)
        except Exception as error:  # a peer failing must not lose our numbers
            failed = [n for n in impls if n != "clconv"]
            for name in failed:
                errors[name] = f"{type(error).__name__}: {error}"
                impls.pop(name)
            times = _best_times(impls, which, rounds, min_time)
        for name, seconds in times.items():
            result[f"{label}_gflops_{name}"] = factor * layer.flops() / seconds / 1e9
            result[f"{label}_ms_{name}"] = seconds * 1e3
        for name in times:
            if name != "clconv":
                result[f"{label}_ratio_{name}"] = times[name] / times["clconv"]
    managed = getattr(pool, "managed_bytes", None)
    result["peak_device_mib"] = None if managed is None else managed / 2**20
    result["algos"] = {op: algos.choose(rt.profile, geo, op)[0].name
                       for op in ("forward", "grad_input", "grad_weight")}
    if errors:
        result["peer_errors"] = errors
    return result


def summarise(results, peers):
    summary = {}
    for label in ("fwd", "fwdbwd"):
        for key in [f"{label}_gflops_clconv"] + [f"{label}_{kind}_{p}" for p in peers
                                                  for kind in ("gflops", "ratio")]:
            values = [r[key] for r in results if r.get(key) is not None]
            if values:
                summary[f"median_{key}"] = statistics.median(values)
                if "_ratio_" in key:
                    summary[f"min_{key}"] = min(values)
    return summary


def format_table(results, summary, peers) -> str:
    names = [p for p in peers]
    head = f"{'layer':<20} {'fwd':>7}"
    for p in names:
        head += f" {p[:5]:>7} {'x' + p[:5]:>7}"
    head += f" {'fwd+bwd':>8}"
    for p in names:
        head += f" {p[:5]:>7} {'x' + p[:5]:>7}"
    head += f" {'MiB':>6}  algos (fwd/gi/gw)"
    lines = [head, "-" * len(head)]

    def cell(value, fmt):
        return format(value, fmt) if value is not None else "-"

    for r in results:
        line = f"{r['layer']:<20} {cell(r.get('fwd_gflops_clconv'), '7.1f'):>7}"
        for p in names:
            line += (f" {cell(r.get(f'fwd_gflops_{p}'), '7.1f'):>7}"
                     f" {cell(r.get(f'fwd_ratio_{p}'), '7.2f'):>7}")
        line += f" {cell(r.get('fwdbwd_gflops_clconv'), '8.1f'):>8}"
        for p in names:
            line += (f" {cell(r.get(f'fwdbwd_gflops_{p}'), '7.1f'):>7}"
                     f" {cell(r.get(f'fwdbwd_ratio_{p}'), '7.2f'):>7}")
        line += f" {cell(r.get('peak_device_mib'), '6.1f'):>6}  " + "/".join(r["algos"].values())
        lines.append(line)
    s = summary
    line = f"{'median':<20} {cell(s.get('median_fwd_gflops_clconv'), '7.1f'):>7}"
    for p in names:
        line += (f" {cell(s.get(f'median_fwd_gflops_{p}'), '7.1f'):>7}"
                 f" {cell(s.get(f'median_fwd_ratio_{p}'), '7.2f'):>7}")
    line += f" {cell(s.get('median_fwdbwd_gflops_clconv'), '8.1f'):>8}"
    for p in names:
        line += (f" {cell(s.get(f'median_fwdbwd_gflops_{p}'), '7.1f'):>7}"
                 f" {cell(s.get(f'median_fwdbwd_ratio_{p}'), '7.2f'):>7}")
    lines.append(line)
    lines.append("GFLOP/s; 'xNAME' = clconv's speed / NAME's speed (>1: clconv faster), "
                 "measured side by side in this run")
    return "\n".join(lines)


def plot(results, peers, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["clconv"] + list(peers)
    fig, axes = plt.subplots(2, 1, figsize=(max(8, len(results) * 0.9), 8), sharex=True)
    x = np.arange(len(results))
    width = 0.8 / len(names)
    for ax, label, title in zip(axes, ("fwd", "fwdbwd"), ("forward", "forward+backward")):
        for i, name in enumerate(names):
            values = [r.get(f"{label}_gflops_{name}") or 0 for r in results]
            ax.bar(x + i * width, values, width, label=name)
        ax.set_ylabel("GFLOP/s")
        ax.set_title(f"conv2d {title}")
        ax.legend()
    axes[1].set_xticks(x + width * (len(names) - 1) / 2)
    axes[1].set_xticklabels([r["layer"] for r in results], rotation=45, ha="right")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
