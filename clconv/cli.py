"""The `clconv` command line; each subcommand lives in `clconv/commands/`."""
from __future__ import annotations

import argparse
import faulthandler
import importlib
import os
import sys

# Subcommand modules, in the order `--help` lists them.
COMMANDS = ("demo", "check", "devices", "bench", "tune", "run_model", "inspect_model",
            "bench_model")


def build_parser() -> argparse.ArgumentParser:
    # lazy: keeps CLI start-up fast (hides no import cycle)
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="clconv",
        description="OpenCL CNN kernels for Raspberry Pi GPUs and any OpenCL device.",
        epilog="Pick a device with CLCONV_DEVICE=INDEX or a substring of 'platform:device' "
               "(see `clconv devices`); CLCONV_LIMITS=videocore4 imposes Pi GPU limits; "
               "CLCONV_ALGO=NAME forces a convolution variant. "
               "Exit codes: 0 ok; 1 results differ from the reference; 2 a bad option or "
               "environment setting (one line names it, the value and the allowed range), "
               "or no usable OpenCL device; 3 a model, image or input file clconv cannot use.",
    )
    parser.add_argument("--version", action="version", version=f"clconv {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"clconv.commands.{name}").register(subparsers)
    return parser


def main(argv=None) -> int:
    # lazy: keeps CLI start-up fast (hides no import cycle)
    from .commands import EXIT_NO_DEVICE, EXIT_OK, EXIT_USAGE
    from .commands.options import EnvironmentSettingError, check_environment
    from .device import DeviceSelectionError

    # A crash inside a driver (a segfault in POCL, say) then prints the Python stack, on
    # a copy of stderr: kernel builds point descriptor 2 elsewhere while they run
    # (build._compiler_chatter), and a crash there must still be seen. A bare descriptor,
    # not a file object, which the interpreter would report unclosed as it exits.
    if not faulthandler.is_enabled():
        faulthandler.enable(file=os.dup(sys.stderr.fileno()))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        check_environment()
    except EnvironmentSettingError as error:
        print(f"clconv {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except DeviceSelectionError as error:
        print(f"clconv: {error}", file=sys.stderr)
        return EXIT_NO_DEVICE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `clconv inspect model.onnx | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
