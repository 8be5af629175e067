"""The one registry of clconv's in-memory caches (built programs, kernels, launch shapes,
geometry, variant choices, tuning databases), so `clear_caches()` can empty them all.

A leaf module: every module that memoises registers its cache here at import time."""
from __future__ import annotations

from typing import Callable

_registry: dict[str, tuple[Callable[[], None], Callable[[], int]]] = {}


def register(name: str, cache) -> None:
    """Register a dict, a set or a functools.lru_cache-wrapped function under `name`."""
    if hasattr(cache, "cache_clear"):
        _registry[name] = (cache.cache_clear, lambda: cache.cache_info().currsize)
    else:
        _registry[name] = (cache.clear, lambda: len(cache))


def memo(name: str, kind=dict):
    """A new, registered, empty dict (or set)."""
    cache = kind()
    register(name, cache)
    return cache


def sizes() -> dict[str, int]:
    """Entries held by each registered cache."""
    return {name: size() for name, (_, size) in _registry.items()}


def clear_caches() -> None:
    """Empty every registered cache (e.g. after changing kernels, tuning files or devices
    behind clconv's back). Safe at any time: each cache refills on the next call."""
    for clear, _ in _registry.values():
        clear()
