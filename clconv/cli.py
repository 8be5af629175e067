"""The `clconv` command line; each subcommand lives in `clconv/commands/`."""
from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order `--help` lists them.
COMMANDS = ("demo", "check", "devices", "bench", "tune", "run_model", "inspect_model",
            "bench_model")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="clconv",
        description="OpenCL CNN kernels for Raspberry Pi GPUs and any OpenCL device.",
        epilog="Pick a device with CLCONV_DEVICE=INDEX or a substring of 'platform:device' "
               "(see `clconv devices`); CLCONV_LIMITS=videocore4 imposes Pi GPU limits.",
    )
    parser.add_argument("--version", action="version", version=f"clconv {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"clconv.commands.{name}").register(subparsers)
    return parser


def main(argv=None) -> int:
    from .commands import EXIT_NO_DEVICE, EXIT_OK
    from .device import DeviceSelectionError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        return args.func(args)
    except DeviceSelectionError as error:
        print(f"clconv: {error}", file=sys.stderr)
        return EXIT_NO_DEVICE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `clconv inspect model.onnx | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
