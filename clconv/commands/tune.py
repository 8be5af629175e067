"""`clconv tune`: time the valid convolution variants and tunables for a layer list on
the chosen device and store the fastest in the per-device tuning database."""
import sys

from . import EXIT_OK, options

EXIT_USAGE = 3


def register(subparsers):
    parser = subparsers.add_parser(
        "tune", help="time every valid conv variant and its tunables for a layer list "
                     "(default: the benchmark suite) and store the fastest per device")
    parser.add_argument("--suite", choices=("default", "smoke"), default="default",
                        help="layers to tune (default: the `clconv bench` suite)")
    parser.add_argument("--layer", action="append", metavar="NAME",
                        help="only this layer (repeatable)")
    parser.add_argument("--op", action="append", choices=("forward", "grad_input", "grad_weight"),
                        help="only this op (repeatable; default all three)")
    parser.add_argument("--max-configs", type=options.positive_int, default=12,
                        help="tunable settings tried per variant (default 12, defaults first)")
    parser.add_argument("--rounds", type=options.positive_int, default=3,
                        help="timing rounds (default 3)")
    parser.add_argument("--dry-run", action="store_true", help="measure but do not save")
    parser.set_defaults(func=run)


def _progress_printer():
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    # a bar on a terminal; a line per setting in a log, where a bar's refreshes pile up
    bar = tqdm(unit="cfg", file=sys.stderr) if tqdm is not None and sys.stderr.isatty() \
        else None

    def progress(name, params, seconds, error=None):
        text = f"{name} {params}: " + (error or "failed" if seconds is None
                                       else f"{seconds * 1e3:.3f} ms")
        if bar is not None:
            bar.set_postfix_str(text[:70])
            bar.update(1)
        else:
            print("   ", text, file=sys.stderr)
    return progress, bar


def run(args) -> int:
    # lazy: keeps CLI start-up fast (hides no import cycle)
    from .. import bench, tuner, tuning
    from ..runtime import current

    try:
        layers = bench.pick_layers(args.suite, args.layer)
    except ValueError as error:
        print(f"clconv tune: {error}", file=sys.stderr)
        return EXIT_USAGE
    rt = current()
    print(f"device:   {rt.profile.label} (driver {rt.profile.driver_version})"
          + (f", limits imitate {rt.profile.limits_name}" if rt.profile.limits_name else ""))
    print(f"database: {tuning.db_path(rt.profile)}")
    progress, bar = _progress_printer()
    report, path = tuner.tune(rt, layers, ops=tuple(args.op or tuner.OPS),
                              max_per_variant=args.max_configs, rounds=args.rounds,
                              progress=progress, save=not args.dry_run)
    if bar is not None:
        bar.close()
    width = max([len("best")] + [len(best["algo"]) for _, _, best, _ in report])
    print(f"\n{'layer':<20} {'op':<12} {'best':<{width}} {'ms':>9}  {'direct ms':>9}  params")
    for name, op, best, measured in report:
        direct = next((m["ms"] for m in measured if m["algo"] == "direct"), None)
        direct_text = f"{direct:9.3f}" if direct is not None else "-"
        print(f"{name:<20} {op:<12} {best['algo']:<{width}} {best['ms']:9.3f}  {direct_text:>9}  "
              f"{best['params']}")
    print(f"\nsaved to {path}" if path else "\ndry run: nothing saved")
    return EXIT_OK
