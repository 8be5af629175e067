"""`clconv devices`: the device table, the chosen device and why."""
import sys

from ..device import DeviceProfile, DeviceSelectionError, describe, enumerate_devices, select_device
from . import EXIT_NO_DEVICE, EXIT_OK


def register(subparsers):
    parser = subparsers.add_parser("devices", help="list OpenCL devices and the one clconv chooses")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print the chosen device's profile (limits)")
    parser.set_defaults(func=run)


def run(args) -> int:
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
        profile = DeviceProfile.from_device(selection.candidate.device)
        for field, value in vars(profile).items():
            if field == "extensions":
                value = " ".join(sorted(value))
            print(f"  {field:<25} {value}")
    return EXIT_OK
