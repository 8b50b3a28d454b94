"""Files the package writes and reads: whole or not at all, in one cache.

Every file ``ssfer`` writes (run records, checkpoints, decoded data sets,
splits) goes through ``atomic_path``: it is written under a temporary name
next to its final one and moved in place with ``os.replace``, so a reader
(or a rerun after ``kill -9``) sees the old file or the new one, never half of
one. A failed write (full disk, read-only folder) raises ``WriteError`` naming
the file and leaves no temporary file behind, whatever the writer turned the
system's error into (``torch.save`` raises ``RuntimeError``).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from ssfer.errors import CheckpointError, DiskFull, WriteError


def cache_root() -> Path:
    """Where runs and decoded data sets are cached: ``$SSFER_CACHE`` (``~`` expanded),
    else ``~/.cache/ssfer``."""
    env = os.environ.get("SSFER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ssfer"


def write_error(path: Path, e: OSError) -> WriteError:
    """A ``WriteError`` naming ``path`` and the system's reason."""
    err = WriteError(f"{path}: cannot write ({e.strerror or e}); nothing half-written was left behind")
    err.errno, err.filename = e.errno, str(path)
    return err


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A fresh temporary path next to ``path`` for the block to write; moved onto
    ``path`` when the block ends, removed when it raises. For writers that want a
    path (a memory-mapped array); ``atomic_write`` is for those that take a file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as e:
        raise write_error(path, e) from e
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise write_error(path, e) from e
        raise


class _Watched:
    """The file ``atomic_write`` hands its writer: it remembers the first
    ``OSError`` a write or flush raised. ``torch.save`` turns a full disk into
    ``RuntimeError: [enforce fail at inline_container.cc...] unexpected pos``;
    the error remembered here is what the failure really was."""

    def __init__(self, f: IO[bytes]):
        self.f, self.error = f, None

    def _watch(self, call, *args):
        try:
            return call(*args)
        except OSError as e:
            self.error = self.error or e
            raise

    def write(self, data) -> int:
        return self._watch(self.f.write, data)

    def flush(self) -> None:
        self._watch(self.f.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """``write(f)`` into a binary file that replaces ``path`` once it is complete
    and on disk (e.g. ``lambda f: np.save(f, a)``). The one place where a failed
    write, however the writer reports it, becomes a ``WriteError`` naming ``path``."""
    with atomic_path(path) as tmp, os.fdopen(os.open(tmp, os.O_WRONLY), "wb") as raw:
        f = _Watched(raw)
        try:
            write(f)
            f.flush()
            os.fsync(raw.fileno())
        except Exception as e:
            if f.error is not None and e is not f.error:
                # the system's error, which atomic_path names with the file
                raise OSError(f.error.errno, f.error.strerror) from e
            raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False, allow_nan=False) + "\n")


def free_bytes(folder: Path) -> int | None:
    """Bytes free to this user on the file system of ``folder`` (or of its
    nearest existing parent); None if it cannot be told."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def human_size(n: int | None) -> str:
    """A byte count as people read it: ``130.0 KiB``, ``12.3 MiB``, ``1.2 GiB``."""
    if n is None:
        return "? bytes"
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def reserve_space(path: Path, start: int, length: int) -> None:
    """Allocate bytes ``start .. start + length`` of the file ``path`` on disk now.

    A file written through a memory map is sparse until its pages are touched;
    a page the disk then cannot hold kills the process with SIGBUS, with no
    exception and no message. Reserved first, the disk says "full" here
    instead: ``DiskFull`` naming the file, the bytes needed and those free."""
    try:
        fd = os.open(path, os.O_RDWR)
        try:
            _allocate(fd, start, length)
        finally:
            os.close(fd)
    except OSError as e:
        raise no_room(path, length, e) from e


NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def no_room(path: Path, needed: int, e: OSError) -> WriteError:
    """The error to raise when writing ``needed`` bytes to ``path`` failed with
    ``e``: ``DiskFull`` (with the bytes free) if the disk or a quota is full, else
    ``write_error``'s."""
    if e.errno not in NO_ROOM:
        return write_error(path, e)
    free = free_bytes(Path(path).parent)
    err = DiskFull(f"{path}: no room for {human_size(needed)} ({e.strerror or e}; {human_size(free)} free)",
                   needed, free)
    err.errno, err.strerror, err.filename = e.errno, e.strerror, str(path)
    return err


def _allocate(fd: int, start: int, length: int) -> None:
    try:
        os.posix_fallocate(fd, start, length)
        return
    except AttributeError:  # not on this system (macOS)
        pass
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    # file systems that cannot allocate without writing: zeros, written plainly
    os.lseek(fd, start, os.SEEK_SET)
    chunk = bytes(min(length, 1 << 20))
    left = length
    while left > 0:
        left -= os.write(fd, chunk[:left])
    os.fsync(fd)


def load_weights_file(path: Path, map_location: Any = None, hint: str = "") -> Any:
    """``torch.load`` of a checkpoint or weights file, restricted to tensors and
    plain values (``weights_only=True``).

    A run folder may sit in a shared cache: a pickle that names any other Python
    object could run code when loaded, so it is refused before anything in it
    runs. Refused, truncated and corrupt files raise ``CheckpointError`` naming
    the file; ``hint`` says what the user can do about it.
    """
    import torch

    hint = f"; {hint}" if hint else ""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Weights only load failed" in str(e):
            # torch names the first object it refused (its wording differs between versions)
            named = re.search(r"GLOBAL ([\w.]+)", str(e))
            what = f" ({named.group(1)})" if named else ""
            raise CheckpointError(f"{path}: refused to load: it holds Python objects{what} other than tensors and "
                                  f"plain values, which could run code (none was run){hint}") from e
        raise CheckpointError(f"{path}: cannot be read (truncated or corrupt?): {first}{hint}") from e


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in blocks (a weights file can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
