"""Writing files atomically: a reader (or the next run) sees the old file or the
complete new one, never a truncated one, whatever stops the write (an exception,
Ctrl-C, SIGKILL, a power cut)."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", **open_kwargs):
    """Open a new temporary file in `path`'s directory for writing (`mode` "wb" or "w";
    `open_kwargs` such as encoding go to open). When the block ends normally the file is
    flushed to disk, given the permissions of the file it replaces (or the umask's),
    renamed over `path` exactly as given (no suffix added) and the directory is synced.
    When the block raises, the temporary file is removed and `path` is left as it was."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _permissions_for(path))  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


def _permissions_for(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0o022)  # the only portable way to read it
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_figure(fig, path, **savefig_kwargs) -> None:
    """fig.savefig to exactly `path`, atomically; the format comes from the suffix as
    matplotlib would take it (its default format when there is none)."""
    path = Path(path)
    with atomic_write(path) as f:
        fig.savefig(f, format=path.suffix[1:].lower() or None, **savefig_kwargs)
