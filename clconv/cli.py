"""The `clconv` command: `devices` lists OpenCL devices, `check` runs the ops end to end."""
from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_MISMATCH, EXIT_NO_DEVICE = 0, 1, 2


def cmd_devices(args) -> int:
    from .device import DeviceSelectionError, describe, enumerate_devices, select_device

    candidates = enumerate_devices()
    if not candidates:
        print("no OpenCL device found; on Debian: sudo apt-get install pocl-opencl-icd",
              file=sys.stderr)
        return EXIT_NO_DEVICE
    try:
        selection = select_device(candidates)
    except DeviceSelectionError as error:
        print(error, file=sys.stderr)
        return EXIT_NO_DEVICE
    print(describe(candidates, selection.candidate))
    print(f"\nchosen: [{selection.candidate.index}] {selection.candidate.label}")
    print(f"why:    {selection.reason}")
    if args.verbose:
        from .device import DeviceProfile

        profile = DeviceProfile.from_device(selection.candidate.device)
        for field, value in vars(profile).items():
            if field == "extensions":
                value = " ".join(sorted(value))
            print(f"  {field:<25} {value}")
    return EXIT_OK


def cmd_check(args) -> int:
    from .selfcheck import run_checks

    return EXIT_OK if run_checks(seed=args.seed, batch=args.batch) else EXIT_MISMATCH


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clconv",
        description="OpenCL CNN kernels for Raspberry Pi GPUs and any OpenCL device.",
        epilog="Pick a device with CLCONV_DEVICE=INDEX or a substring of 'platform:device' "
               "(see `clconv devices`); CLCONV_LIMITS=videocore4 imposes Pi GPU limits.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"clconv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    devices = sub.add_parser("devices", help="list OpenCL devices and the one clconv chooses")
    devices.add_argument("-v", "--verbose", action="store_true",
                         help="also print the chosen device's profile (limits)")
    devices.set_defaults(func=cmd_devices)
    check = sub.add_parser(
        "check", help="run conv, pooling and their gradients on the default device and "
                      "compare them with the float64 numpy reference")
    check.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    check.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    check.set_defaults(func=cmd_check)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    from .device import DeviceSelectionError

    try:
        return args.func(args)
    except DeviceSelectionError as error:
        print(f"clconv: {error}", file=sys.stderr)
        return EXIT_NO_DEVICE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
