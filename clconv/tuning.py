"""The per-device database of tuned convolution variants, and the shipped defaults.

The user database is one JSON file per device in the user cache directory
(`platformdirs.user_cache_dir("clconv")/tuning`, or `CLCONV_TUNING_DIR`), keyed by the
normalised device name and driver version. It is written only by `clconv tune`; ops only
read it. `tuning_defaults.json`, shipped in the package, holds untuned tunables per
device kind / type, used when a layer was never tuned.
"""
from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

from . import caches
from .atomic_file import atomic_write
from .geometry import layer_key

ENV_DIR = "CLCONV_TUNING_DIR"
SCHEMA = 1

_db_cache: dict[tuple, dict] = caches.memo("tuning.databases")
generation = 0  # bumped whenever a database changes, so memoised choices are redone


def device_key(profile) -> str:
    """Normalised 'device name | driver version' (limits imposed are part of the key)."""
    def norm(text):
        return re.sub(r"[^a-z0-9.+-]+", "-", text.lower()).strip("-")
    key = f"{norm(profile.device_name)}__{norm(profile.driver_version)}"
    if profile.limits_name:
        key += f"__limits-{profile.limits_name}"
    return key


def tuning_dir() -> Path:
    override = os.environ.get(ENV_DIR, "").strip()
    if override:
        return Path(override)
    try:
        import platformdirs
        return Path(platformdirs.user_cache_dir("clconv")) / "tuning"
    except ImportError:  # optional: fall back to the XDG default
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "clconv" / "tuning"


def db_path(profile) -> Path:
    return tuning_dir() / f"{device_key(profile)}.json"


def load(profile) -> dict:
    """The tuned entries for this device: {layer_key: {"algo": name, "params": {...}, ...}}."""
    key = (os.environ.get(ENV_DIR, ""), profile)
    if key not in _db_cache:
        _db_cache[key] = _read_entries(db_path(profile))
    return _db_cache[key]


def _read_entries(path: Path) -> dict:
    """The entries of a database file; {} when it is missing, unreadable or of another schema."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return {}
    return data.get("entries", {})


def save(profile, entries: dict) -> Path:
    """Merge `entries` into the device's database file and write it. Safe with several
    processes tuning at once: under a lock file, each merges into what is on disk at that
    moment (not an older copy) and replaces the file atomically."""
    from filelock import FileLock  # imported here: only `clconv tune` writes the database

    path = db_path(profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        merged = _read_entries(path)
        merged.update(entries)
        data = {"schema": SCHEMA, "device": profile.label, "driver": profile.driver_version,
                "limits": profile.limits_name, "entries": merged}
        with atomic_write(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
    forget_cache()
    return path


def forget_cache():
    """Drop the in-memory copies (after a database or the directory changed)."""
    global generation
    _db_cache.clear()
    generation += 1


def lookup(profile, geo, op: str):
    """(algo, params) tuned for this layer on this device, or None."""
    entry = load(profile).get(layer_key(geo, op))
    if entry is None:
        return None
    return entry["algo"], dict(entry.get("params", {}))


@functools.lru_cache(maxsize=1)
def shipped_defaults() -> dict:
    path = Path(__file__).resolve().parent / "tuning_defaults.json"
    return json.loads(path.read_text()) if path.is_file() else {}


caches.register("tuning.shipped_defaults", shipped_defaults)


def default_params(profile, algo: str, op: str | None = None) -> dict | None:
    """Shipped untuned tunables for `algo` on this kind of device: by device kind (e.g.
    VC4CL), then by device type (CPU/GPU); None if none. An entry may carry per-op
    overrides under the op's name (e.g. "grad_input": {...})."""
    table = shipped_defaults()
    keys = [("kind", profile.kind.name)]
    keys += [("device_type", word) for word in sorted(profile.device_types)]
    for section, value in keys:
        entry = table.get(section, {}).get(value, {}).get(algo)
        if entry is not None:
            params = {k: v for k, v in entry.items() if not isinstance(v, dict)}
            params.update(entry.get(op, {}) if op else {})
            return params
    return None
