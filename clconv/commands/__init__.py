"""Subcommands of `clconv`; each module has `register(subparsers)` and sets `func`."""

# Exit codes shared by every command.
EXIT_OK, EXIT_MISMATCH, EXIT_NO_DEVICE = 0, 1, 2
# A bad option value or environment setting: argparse's own exit code for usage errors.
EXIT_USAGE = 2
# A model, image or input clconv cannot use (unreadable, unsupported, wrong shape).
EXIT_BAD_INPUT = 3
