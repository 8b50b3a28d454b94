"""Files the package writes and reads: whole or not at all, in one cache.

Every file ``ssfer`` writes (run records, checkpoints, decoded data sets,
splits) goes through ``atomic_path``: it is written under a temporary name
next to its final one and moved in place with ``os.replace``, so a reader
(or a rerun after ``kill -9``) sees the old file or the new one, never half of
one. A failed write (full disk, read-only folder) raises ``WriteError`` naming
the file and leaves no temporary file behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from ssfer.errors import CheckpointError, WriteError


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


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """``write(f)`` into a binary file that replaces ``path`` once it is complete
    and on disk (e.g. ``lambda f: np.save(f, a)``)."""
    with atomic_path(path) as tmp, os.fdopen(os.open(tmp, os.O_WRONLY), "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False, allow_nan=False) + "\n")


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
