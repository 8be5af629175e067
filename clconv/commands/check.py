"""`clconv check`: every op of the op table and its gradient against the float64 reference."""
import sys

from . import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, options


def register(subparsers):
    parser = subparsers.add_parser(
        "check", help="run every op and its gradient (clconv.optable) on the default device and "
                      "compare them with the float64 numpy reference")
    parser.add_argument("--seed", type=options.seed, default=0,
                        help="random seed (default 0)")
    parser.add_argument("--batch", type=options.int_range(1, 1024), default=4,
                        help="batch size (default 4)")
    parser.add_argument("--ops", metavar="NAME[,NAME...]", default=None,
                        help="check only these ops of the table, e.g. conv2d,max_pool2d "
                             "(on a slow device every kernel build takes long; default: all)")
    parser.set_defaults(func=run)


def run(args) -> int:
    # lazy: keeps CLI start-up fast (hides no import cycle)
    from ..optable import OPS
    from ..selfcheck import run_checks

    ops = None
    if args.ops is not None:
        ops = {name.strip() for name in args.ops.split(",") if name.strip()}
        known = {spec.name for spec in OPS}
        unknown = sorted(ops - known)
        if unknown or not ops:
            print(f"clconv check: --ops: unknown op {', '.join(unknown) or '(none given)'}; "
                  f"the table's ops: {', '.join(sorted(known))}", file=sys.stderr)
            return EXIT_USAGE
    ok = run_checks(seed=args.seed, batch=args.batch, ops=ops)
    return EXIT_OK if ok else EXIT_MISMATCH
