"""`clconv demo`: train a CNN on the bundled digits, save, reload and draw it."""
from . import EXIT_MISMATCH, EXIT_OK, options


def register(subparsers):
    parser = subparsers.add_parser(
        "demo", help="train a LeNet-style CNN on scikit-learn's digits with clconv's kernels")
    parser.add_argument("--out", default="clconv-demo", metavar="DIR",
                        help="output directory for metrics.json, model.npz and the PNGs "
                             "(default: ./clconv-demo)")
    parser.add_argument("--epochs", type=options.positive_int, default=15,
                        help="training epochs (default 15)")
    parser.add_argument("--batch-size", type=options.positive_int, default=32,
                        help="mini-batch size (default 32)")
    parser.add_argument("--lr", type=options.positive_float, default=2e-3,
                        help="Adam learning rate (default 2e-3)")
    parser.add_argument("--seed", type=options.seed, default=0,
                        help="random seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.set_defaults(func=run)


def run(args) -> int:
    # lazy: keeps CLI start-up fast (hides no import cycle)
    from ..demo import run_demo

    metrics = run_demo(args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       seed=args.seed, progress=not args.no_progress)
    return EXIT_OK if metrics["reload_bit_identical"] else EXIT_MISMATCH
