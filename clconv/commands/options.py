"""Validators for every number on the command line and every environment setting the
commands read, so a bad value stops the command with exit code 2 and one line naming the
option, the value and the allowed range, before any OpenCL call.

The number validators are argparse `type=` functions: argparse prints
"clconv CMD: error: argument --runs: ..." and exits 2.
"""
from __future__ import annotations

import argparse
import math
import os

# Thread counts above this are a typo, and POCL aborts on absurd ones (it sizes its
# pool by POCL_MAX_PTHREAD_COUNT); 1024 was measured to run.
MAX_THREADS = 1024
# Seeds numpy accepts everywhere (np.random.seed takes 32-bit ones).
MAX_SEED = 2**32 - 1
# Largest image side `clconv run --size` takes; bigger sizes are past any device's memory.
MAX_IMAGE_SIDE = 16384


def int_range(minimum: int, maximum: int | None = None):
    """An argparse type: an int in [minimum, maximum] (no upper bound when None)."""
    allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer {allowed}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected an integer {allowed}, got {value}")
        return value

    parse.__name__ = "int"  # argparse names the type in some messages
    return parse


def float_range(minimum: float | None = None, maximum: float | None = None, *,
                exclusive_minimum: bool = False):
    """An argparse type: a finite float, > or >= minimum, <= maximum."""
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if exclusive_minimum else '>='} {minimum:g}")
    if maximum is not None:
        parts.append(f"<= {maximum:g}")
    allowed = "a finite number" + (" " + " and ".join(parts) if parts else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        below = minimum is not None and (value <= minimum if exclusive_minimum
                                         else value < minimum)
        if not math.isfinite(value) or below or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text}")
        return value

    parse.__name__ = "float"
    return parse


positive_int = int_range(1)
non_negative_int = int_range(0)
seed = int_range(0, MAX_SEED)
threads = int_range(1, MAX_THREADS)
positive_float = float_range(0.0, exclusive_minimum=True)


class EnvironmentSettingError(ValueError):
    """An environment variable clconv reads has a value it cannot use."""


def check_environment(environ=None) -> None:
    """Raise EnvironmentSettingError for the first environment setting clconv cannot use:
    CLCONV_LIMITS, CLCONV_ALGO, CLCONV_POISON_OUTPUTS and POCL_MAX_PTHREAD_COUNT.
    CLCONV_DEVICE is checked by the device selection, which names the devices it could
    match."""
    # lazy: keeps CLI start-up fast (hides no import cycle)
    from ..algos import ENV_ALGO, VARIANTS
    from ..arrays import ENV_POISON
    from ..device import ENV_LIMITS, LIMITS

    environ = os.environ if environ is None else environ
    limits = environ.get(ENV_LIMITS, "").strip()
    if limits and limits not in LIMITS:
        raise EnvironmentSettingError(
            f"{ENV_LIMITS}={limits!r}: unknown limits; expected one of {', '.join(LIMITS)} "
            "or unset")
    algo = environ.get(ENV_ALGO, "").strip()
    if algo and algo not in VARIANTS:
        raise EnvironmentSettingError(
            f"{ENV_ALGO}={algo!r}: unknown convolution algorithm; expected one of "
            f"{', '.join(VARIANTS)} or unset")
    poison = environ.get(ENV_POISON, "")
    if poison not in ("", "0", "1"):  # "false" would turn it on: any other text does
        raise EnvironmentSettingError(f"{ENV_POISON}={poison!r}: expected 0, 1 or unset")
    pocl_threads = environ.get("POCL_MAX_PTHREAD_COUNT", "").strip()
    if pocl_threads:
        try:
            threads(pocl_threads)
        except argparse.ArgumentTypeError as error:
            raise EnvironmentSettingError(f"POCL_MAX_PTHREAD_COUNT={pocl_threads!r}: "
                                          f"{error}") from None
