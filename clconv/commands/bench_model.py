"""`clconv bench-model MODEL.onnx`: clconv's latency and ONNX Runtime CPU's with the
same thread count, measured in the same run on the same input."""
from __future__ import annotations

import os
import sys

from . import EXIT_BAD_INPUT, EXIT_OK, options


def register(subparsers):
    parser = subparsers.add_parser(
        "bench-model", help="time an ONNX model on clconv and on ONNX Runtime CPU",
        description="Median latency of --runs runs after --warmup, for clconv on its device and "
                    "for ONNX Runtime's CPU provider with --threads intra-op threads, on the "
                    "same random input; prints the ratio and the largest output difference. "
                    "--threads also caps POCL's threads (POCL_MAX_PTHREAD_COUNT) unless that "
                    "is set already. Exit codes: 0 ok, 2 bad option or no device, 3 bad model.")
    parser.add_argument("model", help="ONNX model file")
    parser.add_argument("--runs", type=options.positive_int, default=10,
                        help="timed runs (10)")
    parser.add_argument("--warmup", type=options.non_negative_int, default=2,
                        help="untimed runs first (2)")
    parser.add_argument("--threads", type=options.threads,
                        default=min(os.cpu_count() or 1, options.MAX_THREADS),
                        help="threads for ONNX Runtime and POCL (default: all cores)")
    parser.add_argument("--shape", action="append", default=[], metavar="NAME=D,D,...",
                        help="shape for an input with symbolic dims")
    parser.add_argument("--profile", action="store_true",
                        help="also time each clconv step (synchronising after each)")
    parser.add_argument("--seed", type=options.seed, default=0,
                        help="seed of the random input (0)")
    parser.set_defaults(func=run)


def run(args) -> int:
    # POCL reads this when its platform loads, so set it before any OpenCL call.
    os.environ.setdefault("POCL_MAX_PTHREAD_COUNT", str(args.threads))
    import numpy as np

    # lazy: keeps CLI start-up fast (hides no import cycle)
    from ..onnx import load
    from ..onnx.errors import OnnxImportError, PlanError, UnsupportedModelError
    from .inspect_model import parse_shapes
    from .progress import time_runs

    try:
        import onnxruntime
    except ImportError:
        print("clconv bench-model: needs onnxruntime: pip install 'clconv[onnx]'", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        model = load(args.model, input_shapes=parse_shapes(args.shape))
    except (OnnxImportError, UnsupportedModelError, PlanError, ValueError, OSError) as error:
        print(f"clconv bench-model: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    rng = np.random.default_rng(args.seed)
    feeds = {name: rng.standard_normal(shape).astype(np.float32)
             for name, shape in model.input_shapes.items()}
    session_options = onnxruntime.SessionOptions()
    session_options.intra_op_num_threads = args.threads
    session_options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(args.model, session_options,
                                           providers=["CPUExecutionProvider"])
    ours = time_runs(lambda: model.run(feeds), args.runs, args.warmup, desc="clconv")
    theirs = time_runs(lambda: session.run(None, feeds), args.runs, args.warmup,
                       desc="onnxruntime")
    out, ref = model.run(feeds)[0], session.run(None, feeds)[0]
    error = float(np.abs(out - ref).max() / max(float(np.abs(ref).max()), 1e-30))
    a, b = float(np.median(ours)), float(np.median(theirs))
    print(f"model        {args.model} inputs {model.input_shapes}")
    print(f"clconv       {a * 1e3:9.1f} ms  median of {args.runs} "
          f"({model.runtime.profile.label})")
    print(f"onnxruntime  {b * 1e3:9.1f} ms  median of {args.runs} (CPU, {args.threads} "
          f"threads, {onnxruntime.__version__})")
    print(f"ratio        {a / b:9.2f}x  clconv / onnxruntime")
    print(f"max relative output difference {error:.2e}")
    if args.profile:
        _profile(model, feeds)
    return EXIT_OK


def _profile(model, feeds):
    """Time per op kind, with the queue drained after every step."""
    totals = {}
    model.run(feeds, on_step=lambda step, seconds: totals.__setitem__(
        step.op, totals.get(step.op, 0.0) + seconds))
    total = sum(totals.values())
    print("\nclconv time by step kind (synchronised):")
    for op, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {op:<45} {seconds * 1e3:9.1f} ms  {100 * seconds / total:5.1f}%")
