"""`clconv run MODEL.onnx IMAGE...`: classify images with an ONNX model; `--random
--bench` times it instead."""
from __future__ import annotations

import sys

from . import EXIT_BAD_INPUT, EXIT_OK, EXIT_USAGE, options


def register(subparsers):
    parser = subparsers.add_parser(
        "run", help="run an ONNX model on images (top-k classes) or on random input",
        description="Load images with Pillow, resize the shorter side and centre-crop to "
                    "--size, normalise with --mean/--std, run the model and print the top-k "
                    "classes. Exit codes: 0 ok, 2 bad option or no OpenCL device, 3 bad model or "
                    "input.")
    parser.add_argument("model", help="ONNX model file")
    parser.add_argument("images", nargs="*", help="image files (any format Pillow reads)")
    parser.add_argument("--random", action="store_true",
                        help="use one random normal input instead of images")
    parser.add_argument("--bench", action="store_true",
                        help="time the model: median of --runs runs after --warmup")
    parser.add_argument("--runs", type=options.positive_int, default=10,
                        help="timed runs for --bench (10)")
    parser.add_argument("--warmup", type=options.non_negative_int, default=2,
                        help="untimed runs first (2)")
    parser.add_argument("--size", type=options.int_range(1, options.MAX_IMAGE_SIDE), nargs="+",
                        metavar="N",
                        help="input height [width]; default: the model's, else 224")
    parser.add_argument("--mean", type=options.float_range(), nargs="+", default=None,
                        help="per-channel mean after scaling to [0, 1] (ImageNet's by default)")
    parser.add_argument("--std", type=options.positive_float, nargs="+", default=None,
                        help="per-channel std (ImageNet's by default)")
    parser.add_argument("--top", "-k", type=options.positive_int, default=5,
                        help="classes to print (5)")
    parser.add_argument("--labels", help="text file with one class name per line, at least "
                                         "one per class the model scores")
    parser.add_argument("--seed", type=options.seed, default=0, help="seed for --random (0)")
    parser.set_defaults(func=run)


def _input_shape(graph, size):
    """(name, N, C, H, W) of the model's image input."""
    # lazy: keeps CLI start-up fast (hides no import cycle)
    from ..onnx.errors import PlanError

    floats = [i for i in graph.inputs if i.dtype is not None and i.dtype.kind == "f"]
    if len(floats) != 1 or len(floats[0].shape) != 4:
        raise PlanError("clconv run needs a model with one 4-D float input (N, C, H, W); this "
                        f"one has {[(i.name, i.shape) for i in graph.inputs]}")
    name, dims = floats[0].name, floats[0].shape
    fixed = [d if isinstance(d, int) and d > 0 else None for d in dims]
    channels = fixed[1] or 3
    if size:
        height, width = size[0], size[-1]
    else:
        height, width = fixed[2] or 224, fixed[3] or 224
    return name, channels, height, width


def _read_labels(path, model) -> list[str]:
    """The class names in `path`, one a line; a ValueError when the file has fewer names
    than the model's first output has classes (each would print as "class N")."""
    import numpy as np

    with open(path, encoding="utf-8") as f:
        labels = [line.strip() for line in f]
    classes = int(np.prod(model.plan.values[model.output_names[0]].shape[1:]))
    if len(labels) < classes:
        raise ValueError(f"--labels {path}: {len(labels)} lines, but the model scores "
                         f"{classes} classes; expected one name per class")
    return labels


def run(args) -> int:
    import numpy as np

    # lazy: keeps CLI start-up fast (hides no import cycle)
    from ..onnx import compile_graph
    from ..onnx.errors import InputError, OnnxImportError, PlanError, UnsupportedModelError
    from ..onnx.images import IMAGENET_MEAN, IMAGENET_STD, load_image, top_k
    from ..onnx.loader import load_model, read_graph
    from .progress import progress, time_runs

    if not args.images and not args.random:
        print("clconv run: give IMAGE files or --random", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.size and len(args.size) > 2:
        print(f"clconv run: error: argument --size: expected 1 or 2 values (height [width]), "
              f"got {len(args.size)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        graph = read_graph(load_model(args.model))
        name, channels, height, width = _input_shape(graph, args.size)
        model = compile_graph(graph, input_shapes={name: (1, channels, height, width)},
                              source=args.model)
        for option, values in (("--mean", args.mean), ("--std", args.std)):
            if values and len(values) not in (1, channels):
                print(f"clconv run: error: argument {option}: expected 1 or {channels} values "
                      f"(the model's channels), got {len(values)}", file=sys.stderr)
                return EXIT_USAGE
        labels = _read_labels(args.labels, model) if args.labels else None
        mean = args.mean or (IMAGENET_MEAN if channels == 3 else (0.5,))
        std = args.std or (IMAGENET_STD if channels == 3 else (0.5,))
        if args.random:
            batches = [("random", np.random.default_rng(args.seed).standard_normal(
                (1, channels, height, width)).astype(np.float32))]
        else:
            batches = [(path, load_image(path, (height, width), mean, std, channels))
                       for path in progress(args.images, desc="loading images")]
        if args.bench:
            seconds = time_runs(lambda: model.run({name: batches[0][1]}), args.runs, args.warmup)
            median = float(np.median(seconds))
            print(f"{args.model}: input {model.input_shapes[name]}, median {median * 1e3:.1f} ms "
                  f"over {args.runs} runs (min {min(seconds) * 1e3:.1f} ms, "
                  f"max {max(seconds) * 1e3:.1f} ms), device {model.runtime.profile.label}")
            return EXIT_OK
        for path, x in progress(batches, desc="running", disable=len(batches) < 3):
            scores = model.run({name: x})[0]
            print(f"{path}:")
            for rank, (index, score, prob) in enumerate(top_k(scores[0], args.top), 1):
                label = labels[index] if labels else f"class {index}"
                print(f"  {rank}. {label:<30} score {score:10.4f}  p={prob:.4f}")
    except (OnnxImportError, UnsupportedModelError, PlanError, InputError, OSError,
            ValueError) as error:
        print(f"clconv run: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK
