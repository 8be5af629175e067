"""`clconv check`: every op of the op table and its gradient against the float64 reference."""
from . import EXIT_MISMATCH, EXIT_OK, options


def register(subparsers):
    parser = subparsers.add_parser(
        "check", help="run every op and its gradient (clconv.optable) on the default device and "
                      "compare them with the float64 numpy reference")
    parser.add_argument("--seed", type=options.seed, default=0,
                        help="random seed (default 0)")
    parser.add_argument("--batch", type=options.int_range(1, 1024), default=4,
                        help="batch size (default 4)")
    parser.set_defaults(func=run)


def run(args) -> int:
    # lazy: keeps CLI start-up fast (hides no import cycle)
    from ..selfcheck import run_checks

    return EXIT_OK if run_checks(seed=args.seed, batch=args.batch) else EXIT_MISMATCH
