"""Class-per-folder layouts: ``<root>/<split>/<class folder>/<image>``.

Folder names are mapped to classes explicitly (a class map, canonical words,
or a data set's numeric codes), never by sort order: two copies of a data set
whose folders sort differently still give the same label indices.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

from ..classes import CANONICAL, canonical_name
from .errors import DataError, Problems
from .manifest import SPLIT_ALIASES, Manifest, ManifestBuilder

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm", ".ppm"})

# resolve(folder name) -> class index, or a str: the reason its images are dropped.
# Raises KeyError for a folder name it does not know.
Resolver = Callable[[str], "int | str"]


def _visible_dirs(path: str) -> list[str]:
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def split_dirs(root: str) -> dict[str, str]:
    """Canonical split name -> folder name, for the split folders under root."""
    if not os.path.isdir(root):
        raise DataError(f"data set root {root} is not a folder")
    out = {}
    for d in _visible_dirs(root):
        out.setdefault(SPLIT_ALIASES.get(d.lower(), d), d)
    return out


def find_split_dir(name: str, root: str, split: str) -> tuple[str, str]:
    """(canonical split, folder path) of ``split`` under root, or DataError."""
    dirs = split_dirs(root)
    key = SPLIT_ALIASES.get(str(split).strip().lower(), str(split))
    if key not in dirs:
        raise DataError(f"{name}: no folder for split {split!r} under {root}; "
                        f"found {sorted(dirs.values()) or 'no folders'}")
    return key, os.path.join(root, dirs[key])


def scan_class_folders(name: str, root: str, split: str, split_dir: str, class_names: Sequence[str],
                       resolve: Resolver, problems: Problems, *, native_size=None,
                       native_channels=None) -> Manifest:
    b = ManifestBuilder(name, split, root, class_names, problems)
    for folder in _visible_dirs(split_dir):
        where = os.path.join(split_dir, folder)
        try:
            target = resolve(folder)
        except KeyError as e:
            problems.error("unknown-label", where,
                           f"class folder {folder!r} is not a known class: {e.args[0] if e.args else ''}")
            continue
        for entry in sorted(os.scandir(where), key=lambda e: e.name):
            if entry.name.startswith(".") or entry.is_dir():
                continue
            if os.path.splitext(entry.name)[1].lower() not in IMAGE_EXTS:
                b.drop("not an image file")
                continue
            if isinstance(target, str):
                b.drop(target)
                continue
            b.add_file(entry.path, target, where)
    return b.build(native_size=native_size, native_channels=native_channels)


def word_or_code_resolver(class_names: Sequence[str], codes: Mapping[str, str | None],
                          drop_words: Mapping[str, str] = {}) -> Resolver:
    """Folders named by a data set's numeric code or by a class word.

    codes: code string -> canonical class, or None when the code is excluded
        (its images are dropped with the reason "code N (<word>)").
    drop_words: lower-case folder words whose images are dropped, -> reason.
    """
    index = {c: i for i, c in enumerate(class_names)}

    def resolve(folder: str):
        key = folder.strip().lower()
        if key in codes:
            cls = codes[key]
            if cls is None or cls not in index:
                return f"class folder {folder!r} not in the {len(class_names)} classes"
            return index[cls]
        if key in drop_words:
            return drop_words[key]
        try:
            cls = canonical_name(key)
        except ValueError:
            raise KeyError(f"expected one of codes {sorted(codes, key=int)} or a class word "
                           f"like {list(class_names)}") from None
        if cls not in index:
            return f"class folder {folder!r} not in the {len(class_names)} classes"
        return index[cls]

    return resolve


def _classes_from_map(class_map: Mapping[str, str | None]) -> tuple[str, ...]:
    seen: list[str] = []
    for v in class_map.values():
        if v is not None and canonical_name(v) not in seen:
            seen.append(canonical_name(v))
    return tuple(seen)


def scan(root, split, problems: Problems, *, class_map: Mapping[str, str | None] | None = None,
         classes: Sequence[str] | None = None) -> Manifest:
    """Generic class-per-folder data set.

    class_map: folder name -> class name (any spelling ``ssfer.classes`` knows),
        or None to leave that folder out (counted in ``dropped``). With a class
        map, every folder must be in it. Without one, folder names must be class
        words ("happy", "Anger", ...).
    classes: the class order of the labels. Default: the class map's values in
        the order given, else the canonical order of the classes found in all
        split folders (so train and test agree).
    """
    root = os.fspath(root)
    split, split_dir = find_split_dir("folder", root, split)
    if class_map is not None:
        class_map = {str(k): v for k, v in class_map.items()}
    if classes is not None:
        class_names = tuple(canonical_name(c) for c in classes)
    elif class_map is not None:
        class_names = _classes_from_map(class_map)
    else:
        found = set()
        for d in split_dirs(root).values():
            for f in _visible_dirs(os.path.join(root, d)):
                try:
                    found.add(canonical_name(f))
                except ValueError:
                    pass  # reported below, with its path, when its split is scanned
        class_names = tuple(c for c in CANONICAL if c in found)
    index = {c: i for i, c in enumerate(class_names)}

    def resolve(folder: str):
        if class_map is not None:
            if folder not in class_map:
                raise KeyError(f"not in class_map {sorted(class_map)}")
            if class_map[folder] is None:
                return f"excluded by class_map: {folder}"
            cls = canonical_name(class_map[folder])
        else:
            try:
                cls = canonical_name(folder)
            except ValueError:
                raise KeyError("not a class word; pass class_map={folder: class} to name it") from None
        if cls not in index:
            raise KeyError(f"class {cls!r} is not in classes={list(class_names)}")
        return index[cls]

    return scan_class_folders("folder", root, split, split_dir, class_names, resolve, problems)


def available_splits(root, **_opts) -> tuple[str, ...]:
    return tuple(split_dirs(os.fspath(root)))
