"""Subcommands of `clconv`; each module has `register(subparsers)` and sets `func`."""

# Exit codes shared by every command.
EXIT_OK, EXIT_MISMATCH, EXIT_NO_DEVICE = 0, 1, 2
