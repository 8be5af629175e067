"""Progress bars (tqdm when installed) and timing for the model commands."""
from __future__ import annotations

import sys
import time


def progress(items, desc: str, disable: bool = False):
    """`items` wrapped in a tqdm bar on stderr when tqdm is installed and stderr is a tty."""
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, file=sys.stderr, leave=False,
                disable=disable or not sys.stderr.isatty())


def time_runs(call, runs: int, warmup: int, desc: str = "timing") -> list[float]:
    """Wall-clock seconds of `runs` calls of `call` after `warmup` untimed ones.
    `call` must block until its work is done (model.run returns host arrays)."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got {runs} and {warmup}")
    for _ in progress(range(warmup), desc=f"{desc} (warm-up)"):
        call()
    seconds = []
    for _ in progress(range(runs), desc=desc):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


PAUSE_S = 0.05  # between two sides' runs: longer than ncnn's OpenMP spin (20 ms)


def time_alternating(calls: dict, runs: int, warmup: int, desc: str = "timing",
                     pause_s: float = PAUSE_S) -> dict:
    """{name: [seconds]}: `runs` wall-clock times of each call, the calls taking turns run
    by run (after `warmup` untimed turns), so that a machine whose speed drifts (other
    jobs, clocks) slows every side alike instead of whichever ran during the slow spell.
    Each run is followed by an untimed pause: runtimes whose threads spin-wait after a
    run (ONNX Runtime's, ncnn's OpenMP) would otherwise take the cores of the next
    side's run, and each keeps its own defaults."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got {runs} and {warmup}")
    for _ in progress(range(warmup), desc=f"{desc} (warm-up)"):
        for call in calls.values():
            call()
    seconds = {name: [] for name in calls}
    for _ in progress(range(runs), desc=desc):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - start)
            time.sleep(pause_s)
    return seconds
