"""`clconv inspect MODEL.onnx`: the nodes, their shapes, the plan's steps and
variants, and whether every node is supported."""
from __future__ import annotations

import sys

from . import EXIT_BAD_INPUT, EXIT_OK


def register(subparsers):
    parser = subparsers.add_parser(
        "inspect", help="list an ONNX model's ops, shapes, chosen variants and support",
        description="Plan the model for clconv (nothing runs on the device) and list each "
                    "step: the ONNX nodes it covers, output shape and the clconv variant. "
                    "Exit codes: 0 every node supported, 3 unsupported or unreadable model.")
    parser.add_argument("model", help="ONNX model file")
    parser.add_argument("--shape", action="append", default=[], metavar="NAME=D,D,...",
                        help="shape for an input with symbolic dims, e.g. input=1,3,224,224")
    parser.set_defaults(func=run)


def parse_shapes(items):
    shapes = {}
    for item in items:
        name, _, dims = item.partition("=")
        try:
            shapes[name] = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise ValueError(f"--shape {item!r}: expected NAME=D,D,... with integers") from None
    return shapes


def _mib(n):
    return f"{n / 2**20:.1f} MiB"


def run(args) -> int:
    import numpy as np

    # lazy: keeps CLI start-up fast (hides no import cycle)
    from ..onnx import compile_graph
    from ..onnx.errors import OnnxImportError, PlanError, UnsupportedModelError
    from ..onnx.loader import load_model, read_graph
    from ..onnx.plan import Tensor

    try:
        graph = read_graph(load_model(args.model))
    except (OnnxImportError, OSError) as error:
        print(f"clconv inspect: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in graph.opsets.items())
    print(f"{args.model}: {len(graph.nodes)} nodes, opsets {opsets}")
    for i in graph.inputs:
        print(f"  input  {i.name}: {i.dtype} {i.shape}")
    counts = {}
    for node in graph.nodes:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    print("  ops    " + ", ".join(f"{op} x{n}" for op, n in sorted(counts.items())))
    try:
        model = compile_graph(graph, input_shapes=parse_shapes(args.shape), source=args.model)
    except UnsupportedModelError as error:
        print(f"\nNOT SUPPORTED: {error}")
        return EXIT_BAD_INPUT
    except (PlanError, ValueError) as error:
        print(f"\ncannot plan: {error}")
        return EXIT_BAD_INPUT
    plan = model.plan
    print(f"\n{'#':>3}  {'op(s)':<40} {'output shape':<22} variant")
    covered = set()
    for k, step in enumerate(plan.steps):
        covered.update(step.nodes)
        shape = "x".join(map(str, step.output_shapes[0])) if step.output_shapes else ""
        reuse = (" [in place]" if step.reuse_input is not None else
                 " [into its Concat]" if step.outputs and step.outputs[0] in plan.slots
                 and plan.slots[step.outputs[0]].root != step.outputs[0] else
                 f" [inside a zero border of {plan.borders[step.outputs[0]]}]"
                 if step.outputs and step.outputs[0] in plan.borders else "")
        print(f"{k:>3}  {step.op:<40} {shape:<22} {step.variant()}{reuse}")
    folded = [n for n in graph.nodes if n.name not in covered]
    if folded:
        print(f"\nfolded at plan time (constants, no kernel): {len(folded)} node(s): "
              + ", ".join(sorted({n.op_type for n in folded})))
    weights = sum(plan.values[n].nbytes for n in plan.device_constants)
    activations = sum(int(np.prod(v.shape)) * 4 for v in plan.values.values()
                      if isinstance(v, Tensor))
    print(f"\nall {len(graph.nodes)} nodes supported: {len(plan.steps)} steps")
    print(f"weights on device {_mib(weights)}; activations {_mib(activations)} in all, planned "
          f"peak {_mib(plan.peak_bytes)} (largest live pair {_mib(plan.largest_pair_bytes)})")
    if plan.arena_bytes:
        print(f"concatenations written in place: {_mib(plan.arena_bytes)} of buffers taken "
              "from the run's memory while they live")
    if plan.borders:
        print(f"outputs written inside zero borders (their readers need no padding pass): "
              f"{len(plan.borders)}, in {_mib(plan.border_bytes)} of buffers the model keeps")
    return EXIT_OK
