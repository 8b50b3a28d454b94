"""Decode once: a split's images as a memory-mapped .npy on disk.

An entry is a folder ``<cache_dir>/<name>/<split>-<H>x<W>x<C>-<key>/`` holding
images.npy, labels.npy, (soft_labels.npy) and meta.json. The key hashes
everything the pixels and labels depend on: each source file's path, size and
mtime, the label files', the labels, face boxes and the transform. Every file is
written atomically (``ssfer.io``), meta.json last, so a reader sees a complete
entry or none, even with two writers at once. A write that fails (a full disk)
removes what it wrote of the entry: the disk is left as free as it was.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import DiskFull
from ..io import atomic_path, atomic_write, atomic_write_text, cache_root, free_bytes, human_size

from . import decode
from .dataset import FERData
from .manifest import Manifest

CACHE_VERSION = 2  # bump when the decoding or what an entry holds changes (2: digests)


def cache_key(m: Manifest, size, channels) -> str:
    h = hashlib.sha256()

    def put(*parts) -> None:
        h.update(("\x1f".join(str(p) for p in parts) + "\n").encode())

    put("v", CACHE_VERSION, "resample", decode.RESAMPLE.name, m.name, m.split, m.kind)
    put("transform", size, channels, m.native_size, m.native_channels, m.pixel_shape)
    put("classes", *m.class_names)
    for f in m.key_files:
        st = os.stat(f)
        put("keyfile", os.path.abspath(f), st.st_size, st.st_mtime_ns)
    if m.kind == "files":
        for src, (sz, mt) in zip(m.sources, m.stats):
            put(src, sz, mt)  # sources are absolute (registry.scan)
    else:  # pixels live in the key files (fer2013.csv); the rows picked are in display
        put("rows", *m.display)
    h.update(m.labels.tobytes())
    if m.boxes is not None:
        h.update(b"boxes" + m.boxes.tobytes())
    if m.soft_labels is not None:
        h.update(b"soft" + m.soft_labels.tobytes())
    return h.hexdigest()[:24]


def _save_npy(path: Path, arr: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, arr))


def _read_entry(entry: Path, key: str) -> FERData | None:
    try:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        if meta.get("key") != key:
            return None
        images = np.load(entry / "images.npy", mmap_mode="r")
        labels = np.load(entry / "labels.npy")
        soft = np.load(entry / "soft_labels.npy") if meta.get("soft_labels") else None
        digests = meta["digests"]
    except (FileNotFoundError, ValueError, OSError, KeyError):
        return None  # incomplete or damaged: rebuild it
    if images.shape[0] != len(labels) or list(images.shape[1:]) != meta["shape"][1:]:
        return None
    return FERData(images=images, labels=labels, class_names=tuple(meta["class_names"]),
                   name=meta["name"], split=meta["split"], soft_labels=soft,
                   paths=meta["paths"], dropped=dict(meta["dropped"]), digests=digests)


def to_ferdata(m: Manifest, images: np.ndarray) -> FERData:
    return FERData(images=images, labels=m.labels, class_names=m.class_names, name=m.name,
                   split=m.split, soft_labels=m.soft_labels, paths=list(m.display),
                   dropped=dict(m.dropped), digests=decode.digest_manifest(m))


def materialize(m: Manifest, size=None, channels=None, cache_dir=None,
                workers: int | None = None) -> FERData:
    """Decoded FERData of ``m``: read from the cache if present, else decode and store.

    cache_dir: None for ``ssfer.io.cache_root()``; False to decode into memory only.
    """
    if cache_dir is False:
        return to_ferdata(m, decode.decode_manifest(m, size, channels, workers=workers))
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    # None means "as the format stores it"; resolve it now so the key and the
    # entry name say what was built.
    size, channels = size or m.native_size, channels or m.native_channels
    key = cache_key(m, size, channels)
    shape_tag = "native" if size is None else f"{size[0]}x{size[1]}"
    entry = root / m.name / f"{m.split}-{shape_tag}-c{channels or 'auto'}-{key}"
    cached = _read_entry(entry, key)
    if cached is not None:
        return cached
    try:
        _write_entry(entry, key, m, size, channels, workers)
    except BaseException as e:
        _remove_unfinished(entry)
        if isinstance(e, DiskFull):
            raise _no_room(root, m, e) from e
        raise
    data = _read_entry(entry, key)
    assert data is not None, f"cache entry {entry} unreadable right after writing it"
    return data


def _write_entry(entry: Path, key: str, m: Manifest, size, channels, workers) -> None:
    with atomic_path(entry / "images.npy") as tmp:
        images = decode.decode_manifest(m, size, channels, out_path=str(tmp), workers=workers)
        shape = list(images.shape)
        del images  # close the writable map before the file moves
    _save_npy(entry / "labels.npy", m.labels)
    if m.soft_labels is not None:
        _save_npy(entry / "soft_labels.npy", m.soft_labels)
    meta = {"key": key, "version": CACHE_VERSION, "name": m.name, "split": m.split,
            "root": os.path.abspath(m.root), "shape": shape, "class_names": list(m.class_names),
            "soft_labels": m.soft_labels is not None, "dropped": dict(m.dropped),
            "paths": list(m.display), "digests": decode.digest_manifest(m)}
    atomic_write_text(entry / "meta.json", json.dumps(meta))


ENTRY_FILES = ("images.npy", "labels.npy", "soft_labels.npy")


def _remove_unfinished(entry: Path) -> None:
    """Remove what a failed write left of ``entry`` (its temporary files are gone
    already), unless another writer finished it meanwhile (meta.json is there)."""
    if not entry.is_dir() or (entry / "meta.json").exists():
        return
    for name in ENTRY_FILES:
        (entry / name).unlink(missing_ok=True)
    if not any(entry.iterdir()):
        entry.rmdir()  # leave no empty entry behind


def _no_room(root: Path, m: Manifest, e: DiskFull) -> DiskFull:
    free = free_bytes(root)  # now that the unfinished entry is gone
    return DiskFull(f"decode cache {root}: no room for the decoded images of {m.name}/{m.split} ({len(m)} images): "
                    f"{human_size(e.needed)} needed, {human_size(free)} free ({e.strerror or 'disk full'}); "
                    "free some space there or point SSFER_CACHE at a disk with room; nothing was left behind",
                    e.needed, free)


def clear_cache(cache_dir=None, name: str | None = None) -> int:
    """Remove cached entries (all, or one data set's); returns how many folders went."""
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    base = root / name if name else root
    if not base.is_dir():
        return 0
    entries = [p for p in base.iterdir() if p.is_dir()] if name else \
        [e for d in base.iterdir() if d.is_dir() for e in d.iterdir() if e.is_dir()]
    for e in entries:
        shutil.rmtree(e)
    return len(entries)
