"""Device time of every launch in a replayed run.

The model's recorded launch list (replay.py) is enqueued as a real run is, all at once,
on a second queue of the same device with profiling on, and each entry's start and end
are read from its event. Nothing waits between launches (unlike the per-step profile,
CompiledModel.run(on_step=...), which drains the queue after every step), so the times
are those of a real run, and what the device spends outside the entries (the gaps that
host work, scheduling or waking threads leave) shows as the span less the busy time.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import pyopencl as cl


@dataclass(frozen=True)
class LaunchTimes:
    """Device times, in seconds, of one launch list over several runs."""

    labels: tuple[str, ...]  # per entry, in order: a kernel's name or "buffer copy"
    best: tuple[float, ...]  # per entry: its shortest device time over the runs
    wall: float              # the fastest run: enqueue of its first input to finish
    busy: float              # that run's device times, summed
    span: float              # that run's first start to last end

    def by_label(self) -> list[tuple[str, float, int]]:
        """(label, summed best time, entries) per label, the longest first."""
        seconds, count = defaultdict(float), defaultdict(int)
        for label, best in zip(self.labels, self.best):
            seconds[label] += best
            count[label] += 1
        return sorted(((label, seconds[label], count[label]) for label in seconds),
                      key=lambda row: -row[1])


def time_launches(launches, feeds: dict, runs: int) -> LaunchTimes:
    """Replay `launches` (a replay.LaunchList) on `feeds` `runs` times on a profiling
    queue of its device and read every entry's event."""
    if runs < 1:
        raise ValueError(f"runs: expected at least 1, got {runs}")
    rt = launches.runtime
    queue = cl.CommandQueue(rt.context, rt.context.devices[0],
                            properties=cl.command_queue_properties.PROFILING_ENABLE)
    try:
        best, fastest = None, None
        for _ in range(runs):
            queue.finish()
            started = time.perf_counter()
            events = launches.enqueue(feeds, queue)
            queue.finish()
            wall = time.perf_counter() - started
            spans = [(event.profile.start, event.profile.end) for _, event in events]
            seconds = [(end - start) * 1e-9 for start, end in spans]
            best = seconds if best is None else [min(a, b) for a, b in zip(best, seconds)]
            if spans and (fastest is None or wall < fastest[0]):
                span = (max(end for _, end in spans) - min(start for start, _ in spans)) * 1e-9
                fastest = (wall, sum(seconds), span)
    finally:
        queue.finish()
    if fastest is None:
        raise ValueError("launches: the list holds no launch to time")
    return LaunchTimes(tuple(label for label, _ in events), tuple(best), *fastest)
