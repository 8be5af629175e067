"""Checking and storing state dicts (.npz)."""
from __future__ import annotations

import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..atomic_file import atomic_write


class StateDictError(ValueError):
    """A state dict or model file that does not fit the model; names the key."""


def check_state(state, expected_shapes: dict, strict: bool) -> dict:
    """Validate `state` against the model's keys and shapes; return float arrays by key."""
    if not hasattr(state, "keys"):
        raise TypeError(f"state_dict: expected a mapping of names to arrays, got "
                        f"{type(state).__name__}")
    missing = [k for k in expected_shapes if k not in state]
    unexpected = [k for k in state.keys() if k not in expected_shapes]
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected)}")
        raise StateDictError("state_dict does not match the model: " + "; ".join(parts))
    values = {}
    for key, shape in expected_shapes.items():
        if key not in state:
            continue
        value = state[key]
        if hasattr(value, "detach"):  # a torch tensor passed directly
            value = value.detach().cpu().numpy()
        value = np.asarray(value)
        if value.dtype.kind not in "fiu":
            raise StateDictError(f"{key}: expected a numeric array, got dtype {value.dtype}")
        if tuple(value.shape) != tuple(shape):
            raise StateDictError(f"{key}: expected shape {tuple(shape)}, got {tuple(value.shape)}")
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise StateDictError(f"{key}: contains NaN or infinite values")
        _check_fits_float32(key, value)
        values[key] = value
    return values


def _check_fits_float32(key, value) -> None:
    """Parameters are stored as float32: a wider float beyond its range would load as
    inf, silently."""
    if value.dtype.kind != "f" or value.dtype.itemsize <= 4:
        return
    with np.errstate(over="ignore"):
        overflows = ~np.isfinite(value.astype(np.float32))
    if overflows.any():
        worst = value[overflows].flat[np.argmax(np.abs(value[overflows]))]
        raise StateDictError(f"{key}: holds {worst:.6g}, beyond float32's range "
                             f"(+-{float(np.finfo(np.float32).max):.6g}) that parameters "
                             f"are stored in")


def save(model, path) -> None:
    """Write model.state_dict() as an .npz archive to exactly `path` (no suffix added),
    atomically: an interrupted save leaves the previous file at `path` intact."""
    state = model.state_dict()
    with atomic_write(path) as f:  # a file object: np.savez would append .npz to a name
        np.savez(f, **state)


def _check_declared_sizes(path: Path) -> None:
    """Raise StateDictError when an array's .npy header declares more bytes than its
    member of the archive holds: np.load would allocate the declared size first (a
    corrupt header can ask for terabytes) and only then find the data missing."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(member, max_header_size=10000)
                declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
                held = info.file_size - member.tell()
            if declared > held:
                raise StateDictError(
                    f"{path}: {info.filename} declares shape {shape} of {dtype} ({declared} "
                    f"bytes) but holds {held} bytes (corrupt or truncated file)")


def load(model, path, strict: bool = True) -> None:
    """Load an .npz written by `save` (or np.savez of a torch state_dict) into model."""
    path = Path(path)
    try:
        _check_declared_sizes(path)
        with np.load(path, allow_pickle=False) as archive:
            state = OrderedDict((key, archive[key]) for key in archive.files)
    except FileNotFoundError:
        raise
    except MemoryError as error:
        raise StateDictError(f"{path}: an array is larger than host memory ({error})") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as error:
        raise StateDictError(f"{path}: not a readable .npz model file ({error})") from None
    model.load_state_dict(state, strict=strict)
