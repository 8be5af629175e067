"""The per-device database of tuned convolution variants, and the shipped defaults.

The user database is one JSON file per device in the user cache directory
(`platformdirs.user_cache_dir("clconv")/tuning`, or `CLCONV_TUNING_DIR`), keyed by the
device kind and normalised name. Each entry records the driver version it was tuned
under; entries from another version are still used, with a warning. It is written only
by `clconv tune`; ops only read it. `tuning_defaults.json`, shipped in the package, holds untuned tunables per
device kind / type, used when a layer was never tuned.
"""
from __future__ import annotations

import functools
import json
import os
import re
import warnings
from pathlib import Path

from . import caches
from .atomic_file import atomic_write
from .device import DeviceKind
from .geometry import layer_key

ENV_DIR = "CLCONV_TUNING_DIR"
SCHEMA = 1

_db_cache: dict[tuple, dict] = caches.memo("tuning.databases")
generation = 0  # bumped whenever a database changes, so memoised choices are redone


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9.+-]+", "-", text.lower()).strip("-")


def device_key(profile) -> str:
    """'kind__device-name' normalised (case folded, whitespace and punctuation collapsed),
    plus the limits imposed. The driver version is not part of it: it is kept in the file,
    and a change is warned about (see load) rather than silently starting over."""
    key = f"{DeviceKind(profile.kind).name.lower()}__{_norm(profile.device_name)}"
    if profile.limits_name:
        key += f"__limits-{profile.limits_name}"
    return key


def _legacy_key(profile) -> str:
    """The file name clconv used before (name and driver version), still read."""
    key = f"{_norm(profile.device_name)}__{_norm(profile.driver_version)}"
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
    """The tuned entries for this device: {layer_key: {"algo": name, "params": {...}, ...}}.
    Warns (once per process and device) when they were tuned under another driver version."""
    key = (os.environ.get(ENV_DIR, ""), profile)
    if key not in _db_cache:
        data = _read_database(profile)
        entries = data.get("entries", {})
        older = sorted({str(entry.get("driver", data.get("driver")))
                        for entry in entries.values() if isinstance(entry, dict)}
                       - {profile.driver_version, "None"})
        if older:
            warnings.warn(
                f"tuning database {db_path(profile)}: entries tuned with driver version(s) "
                f"{', '.join(map(repr, older))}, the device now runs "
                f"{profile.driver_version!r}; they are still used but may no longer be the "
                f"fastest (run `clconv tune` again)", DriverChangedWarning, stacklevel=2)
        _db_cache[key] = data.get("entries", {})
    return _db_cache[key]


class DriverChangedWarning(UserWarning):
    """The tuning database was written under another driver version."""


def _read_database(profile) -> dict:
    """The device's database ({} when there is none), or the file of the old naming."""
    path = db_path(profile)
    if not path.exists():
        path = tuning_dir() / f"{_legacy_key(profile)}.json"
    return _read_file(path)


def _read_file(path: Path) -> dict:
    """A database file's contents; {} when it is missing, unreadable or of another schema."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or \
            not isinstance(data.get("entries", {}), dict):
        return {}
    return data


def _read_entries(path: Path) -> dict:
    """The entries of a database file; {} when it is missing, unreadable or of another schema."""
    return _read_file(path).get("entries", {})


def save(profile, entries: dict) -> Path:
    """Merge `entries` into the device's database file and write it. Safe with several
    processes tuning at once: under a lock file, each merges into what is on disk at that
    moment (not an older copy) and replaces the file atomically."""
    from filelock import FileLock  # imported here: only `clconv tune` writes the database

    path = db_path(profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        merged = dict(_read_database(profile).get("entries", {}))
        merged.update({key: {**entry, "driver": profile.driver_version}
                       for key, entry in entries.items()})
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


def default_params(profile, algo: str, op: str | None = None,
                   use: str | None = None) -> dict | None:
    """Shipped untuned tunables for `algo` on this kind of device: by device kind (e.g.
    VC4CL), then by device type (CPU/GPU); None if none. On a CPU, a GEMM tile (an
    entry with TM) takes its shape from the CPU class (`cpu_class` section: TM, TN, NV
    that fit the class's vector registers). An entry may carry per-op overrides under
    the op's name (e.g. "grad_input": {...}), applied last, and overrides for a use of
    the op (e.g. "input_affine": a forward that applies a batch norm to its input as it
    loads it), applied after those."""
    table = shipped_defaults()
    keys = [("kind", profile.kind.name)]
    keys += [("device_type", word) for word in sorted(profile.device_types)]
    for section, value in keys:
        entry = table.get(section, {}).get(value, {}).get(algo)
        if entry is not None:
            params = _common(entry)
            tile = cpu_gemm_tile(profile) if section == "device_type" and "TM" in params \
                else {}
            params.update(_common(tile))
            for member in (op, use):
                if member:
                    params.update(entry.get(member, {}))
                    params.update(tile.get(member, {}))  # the class's word is the last
            return params
    return None


def _common(entry: dict) -> dict:
    """An entry's tunables without its per-op members."""
    return {k: v for k, v in entry.items() if not isinstance(v, dict)}


def cpu_gemm_tile(profile) -> dict:
    """{TM, TN, NV} of the GEMM micro-kernel for this CPU's class, with per-op members
    that override the CPU entries' own (e.g. "grad_input": {"NV": 2}); {} off CPUs."""
    cls = profile.cpu_class
    if cls is None:
        return {}
    return dict(shipped_defaults().get("cpu_class", {}).get(cls.name, {}).get("gemm_tile", {}))
