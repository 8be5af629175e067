"""`clconv bench-model MODEL.onnx`: clconv's latency and ONNX Runtime CPU's with the
same thread count (and ncnn's, when installed), measured in the same run on the same
input, taking turns run by run; with --batch N, images per second at that batch."""
from __future__ import annotations

import os
import sys
import tempfile

from . import EXIT_BAD_INPUT, EXIT_OK, options


AGREE = 1e-3  # largest output difference, relative to the largest output, called agreement


def register(subparsers):
    parser = subparsers.add_parser(
        "bench-model", help="time an ONNX model on clconv and on ONNX Runtime CPU",
        description="Best and median latency of --runs runs after --warmup, for clconv on its "
                    "device and for ONNX Runtime's CPU provider with --threads intra-op "
                    "threads, on the same random input, and for ncnn (the model converted "
                    "by pnnx) when the ncnn and pnnx packages are installed, and for tinygrad's "
                    "ONNX runner (DEV=CL) when tinygrad is installed, alternating run "
                    "by run (so that the machine's drift slows all alike); prints the "
                    "ratios, images per second at --batch, and the largest output "
                    "differences. "
                    "--threads also caps POCL's threads (POCL_MAX_PTHREAD_COUNT) unless that "
                    "is set already. Exit codes: 0 ok, 2 bad option or no device, 3 bad model.")
    parser.add_argument("model", help="ONNX model file")
    parser.add_argument("--runs", type=options.positive_int, default=10,
                        help="timed runs (10)")
    parser.add_argument("--warmup", type=options.non_negative_int, default=2,
                        help="untimed runs of each first (2); clconv also runs twice "
                             "before them: its kernel builds, then the run it records as "
                             "its launch list (see docs/onnx.md)")
    parser.add_argument("--threads", type=options.threads,
                        default=min(os.cpu_count() or 1, options.MAX_THREADS),
                        help="threads for ONNX Runtime and POCL (default: all cores)")
    parser.add_argument("--batch", type=options.positive_int, default=None,
                        help="images per run: sets every input's leading dim (a fixed one "
                             "in the model is made symbolic for both runtimes)")
    parser.add_argument("--shape", action="append", default=[], metavar="NAME=D,D,...",
                        help="shape for an input with symbolic dims")
    parser.add_argument("--profile", action="store_true",
                        help="also time each clconv step (synchronising after each), and "
                             "each kernel of a replayed run by its device events (nothing "
                             "waiting between launches)")
    parser.add_argument("--seed", type=options.seed, default=0,
                        help="seed of the random input and of --random-weights (0)")
    parser.add_argument("--no-tinygrad", action="store_true",
                        help="do not measure tinygrad (its first runs compile for tens of "
                             "seconds)")
    parser.add_argument("--random-weights", action="store_true",
                        help="give every layer seeded random weights first (done anyway, "
                             "and said, when every weight tensor holds one value, as in the "
                             "ONNX model-zoo test nets: their outputs agree on anything)")
    parser.set_defaults(func=run)


def run(args) -> int:
    # POCL reads this when its platform loads, so set it before any OpenCL call.
    os.environ.setdefault("POCL_MAX_PTHREAD_COUNT", str(args.threads))
    import numpy as np

    # lazy: keeps CLI start-up fast (hides no import cycle)
    from ..onnx import load
    from ..onnx.errors import OnnxImportError, PlanError, UnsupportedModelError
    from ..onnx.loader import load_model
    from ..onnx.random_weights import has_constant_weights, randomize_weights
    from .inspect_model import parse_shapes
    from .progress import PAUSE_S, time_alternating

    try:
        import onnxruntime
    except ImportError:
        print("clconv bench-model: needs onnxruntime: pip install 'clconv[onnx]'", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        proto = load_model(args.model)
        if args.random_weights or has_constant_weights(proto):
            why = ("--random-weights" if args.random_weights else
                   "every weight tensor of the model holds one value, so any two "
                   "implementations would agree on it")
            count = randomize_weights(proto, args.seed)
            print(f"weights      {count} layer tensors given seeded random values "
                  f"(seed {args.seed}): {why}")
        shapes = parse_shapes(args.shape)
        if args.batch is not None:
            shapes = batched_shapes(proto, shapes, args.batch)
        compared = expose_softmax_input(proto)
        model = load(proto, input_shapes=shapes)
    except (OnnxImportError, UnsupportedModelError, PlanError, ValueError, OSError) as error:
        hint = ("" if args.batch is None else
                f" (with --batch {args.batch}: a model that fixes its batch elsewhere, such "
                "as a Reshape to [1, ...], cannot run other batches)")
        print(f"clconv bench-model: {error}{hint}", file=sys.stderr)
        return EXIT_BAD_INPUT
    rng = np.random.default_rng(args.seed)
    feeds = {name: rng.standard_normal(shape).astype(np.float32)
             for name, shape in model.input_shapes.items()}
    session_options = onnxruntime.SessionOptions()
    session_options.intra_op_num_threads = args.threads
    session_options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(proto.SerializeToString(), session_options,
                                               providers=["CPUExecutionProvider"])
        reference = session.run(None, feeds)[compared]
    except Exception as error:  # onnxruntime raises its own Fail/InvalidArgument types
        print(f"clconv bench-model: ONNX Runtime cannot run the model with inputs "
              f"{model.input_shapes}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    calls = {"clconv": lambda: model.run(feeds),
             "onnxruntime": lambda: session.run(None, feeds)}
    with tempfile.TemporaryDirectory(prefix="clconv-ncnn-") as workdir:
        ncnn_model, ncnn_note = _ncnn(proto, model.input_shapes, args.threads, workdir)
        if ncnn_model is not None:
            calls["ncnn"] = lambda: ncnn_model.run(feeds)
        tinygrad_model, tinygrad_note = (None, "--no-tinygrad") if args.no_tinygrad else \
            _tinygrad(proto, proto.graph.output[compared].name, feeds, workdir)
        if tinygrad_model is not None:
            calls["tinygrad"] = lambda: tinygrad_model.run(feeds)
        for _ in range(2):  # whatever --warmup says: kernel builds, then the recorded run
            model.run(feeds)
        times = time_alternating(calls, args.runs, args.warmup, desc=" / ".join(calls))
        differences = {"clconv": _difference(model.run(feeds)[compared], reference)}
        if ncnn_model is not None and compared == 0:  # ncnn returns the first output only
            differences["ncnn"] = _difference(ncnn_model.run(feeds), reference)
        if tinygrad_model is not None:
            differences["tinygrad"] = _difference(tinygrad_model.run(feeds), reference)
    batch = batch_size(model.input_shapes)
    print(f"model        {args.model} inputs {model.input_shapes}")
    print(f"timing       {args.runs} runs each after {args.warmup} warm-up, "
          f"{', '.join(calls)} alternating run by run, {PAUSE_S * 1e3:.0f} ms apart")
    print(f"{'':12} {'best ms':>9} {'median ms':>10} {'images/s':>9}")
    where = {"clconv": model.runtime.profile.label,
             "onnxruntime": f"CPU, {args.threads} threads, {onnxruntime.__version__}",
             "ncnn": f"CPU, {args.threads} threads, pnnx-converted, one image per extraction",
             "tinygrad": "DEV=" + (tinygrad_model.device if tinygrad_model else "")
                         + ", its ONNX runner under TinyJit"}
    for name, seconds in times.items():
        median = float(np.median(seconds))
        print(f"{name:<12} {min(seconds) * 1e3:9.1f} {median * 1e3:10.1f} "
              f"{batch / median:9.1f}  ({where[name]})")
    theirs = times["onnxruntime"]
    for name in [n for n in times if n != "onnxruntime"]:
        ours = times[name]
        print(f"ratio        {min(ours) / min(theirs):9.2f} "
              f"{float(np.median(ours)) / float(np.median(theirs)):10.2f}  {name} / "
              f"onnxruntime (best, median; below 1: {name} faster)")
    print(f"execution    clconv {model.replay_note}")
    if ncnn_note:
        print(f"ncnn         not measured: {ncnn_note}")
    if tinygrad_note:
        print(f"tinygrad     not measured: {tinygrad_note}")
    if compared:
        print(f"compared     the input of the final Softmax ({proto.graph.output[compared].name!r})")
    for name, error in differences.items():
        print(f"max relative output difference {error:.2e}"
              + ("" if name == "clconv" else f" ({name} against onnxruntime)")
              + ("" if error <= AGREE else "  DISAGREES: its timing may be of another "
                 "computation"))
    if args.profile:
        _profile(model, feeds)
        _device_profile(model, feeds, args.runs)
    return EXIT_OK


def expose_softmax_input(proto) -> int:
    """The index of the output to compare: 0, or, when the first graph output is made by
    a Softmax, its input, added as a graph output (a softmax of random weights' large
    logits saturates to 0 and 1, which hide any difference before it)."""
    first = proto.graph.output[0].name if proto.graph.output else None
    producer = next((n for n in proto.graph.node if first in n.output), None)
    if producer is None or producer.op_type != "Softmax":
        return 0
    logits = proto.graph.output.add()
    logits.CopyFrom(proto.graph.output[0])  # a softmax keeps its input's shape and type
    logits.name = producer.input[0]
    return len(proto.graph.output) - 1


def _difference(out, reference) -> float:
    """Largest difference relative to the reference's largest magnitude; inf when the
    shapes hold different numbers of values."""
    import numpy as np

    out = np.asarray(out)
    if out.size != reference.size:
        return float("inf")
    scale = max(float(np.abs(reference).max()), 1e-30)
    return float(np.abs(out.reshape(reference.shape) - reference).max() / scale)


def _tinygrad(proto, output, feeds, workdir):
    """(the model loaded by tinygrad and run twice: its kernel builds, then its JIT's
    capture; None), or (None, why it is not measured)."""
    from . import tinygrad_peer

    reason = tinygrad_peer.unavailable()
    if reason is not None:
        return None, reason
    try:
        model = tinygrad_peer.load(proto, output, workdir)
        for _ in range(2):
            model.run(feeds)
        return model, None
    except RuntimeError as error:
        return None, str(error)
    except Exception as error:  # an op tinygrad lacks shows on its first run
        return None, f"tinygrad failed on its first runs: {type(error).__name__}: {error}"


def _ncnn(proto, input_shapes, threads, workdir):
    """(the model converted for ncnn, None), or (None, why it is not measured)."""
    from . import ncnn_peer

    reason = ncnn_peer.unavailable()
    if reason is not None:
        return None, reason
    try:
        return ncnn_peer.convert(proto, input_shapes, threads, workdir), None
    except RuntimeError as error:
        return None, str(error)


def batched_shapes(proto, shapes: dict, batch: int) -> dict:
    """Input shapes with the leading dim set to `batch`; a fixed leading dim of the
    graph's inputs and outputs in `proto` is made symbolic ("batch") so that ONNX Runtime
    accepts the batch too. A model that fixes its batch elsewhere (a Reshape to [1, ...])
    still fails, with the runtime's own message."""
    initializers = {t.name for t in proto.graph.initializer}
    shapes = dict(shapes)
    for value in proto.graph.input:
        dims = value.type.tensor_type.shape.dim
        if value.name in initializers or not dims:
            continue
        known = shapes.get(value.name)
        if known is None:
            rest = []
            for axis, d in enumerate(dims[1:], start=1):
                if not d.HasField("dim_value"):
                    raise ValueError(f"input {value.name!r}: dimension {axis} is symbolic; "
                                     f"pass --shape {value.name}=D,D,...")
                rest.append(d.dim_value)
            known = (batch, *rest)
        shapes[value.name] = (batch, *tuple(known)[1:])
        _make_batch_symbolic(dims)
    for value in proto.graph.output:
        _make_batch_symbolic(value.type.tensor_type.shape.dim)
    return shapes


def _make_batch_symbolic(dims):
    if dims:
        dims[0].ClearField("dim_value")
        dims[0].dim_param = "batch"


def batch_size(input_shapes: dict) -> int:
    """Images per run: the leading dim of the first input."""
    first = next(iter(input_shapes.values()), (1,))
    return int(first[0]) if first else 1


def _profile(model, feeds):
    """Time per op kind, with the queue drained after every step."""
    totals = {}
    model.run(feeds, on_step=lambda step, seconds: totals.__setitem__(
        step.op, totals.get(step.op, 0.0) + seconds))
    total = sum(totals.values())
    print("\nclconv time by step kind (synchronised):")
    for op, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {op:<45} {seconds * 1e3:9.1f} ms  {100 * seconds / total:5.1f}%")


def _device_profile(model, feeds, runs: int):
    """Device time per kernel in a replayed run (onnx/profiling.py), best per launch."""
    try:
        times = model.launch_times(feeds, runs)
    except RuntimeError as error:
        print(f"\nclconv device time per kernel: not measured: {error}")
        return
    print(f"\nclconv device time per kernel (a replayed run on a profiling queue, nothing "
          f"waiting between launches; best of {runs} per launch):")
    print(f"  fastest run {times.wall * 1e3:.2f} ms: launches busy {times.busy * 1e3:.2f} ms, "
          f"first start to last end {times.span * 1e3:.2f} ms, "
          f"{len(times.labels)} launches and copies")
    for label, seconds, count in times.by_label():
        print(f"  {label:<32} {seconds * 1e3:9.3f} ms  {count:4d} launch(es)  "
              f"{100 * seconds / max(sum(times.best), 1e-12):5.1f}%")
