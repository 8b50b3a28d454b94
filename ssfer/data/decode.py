"""Decode a manifest's images to one uint8 NHWC array, in parallel.

Workers write straight into a memory-mapped .npy, so decoded pixels never
travel between processes; its bytes are reserved on disk before the first is
written (``ssfer.io.reserve_space``), so a full disk is an error, not a SIGBUS.
``inspect_manifest`` is the data check's pass over the same sources: content
hash and pixel statistics of each image, no resize.
"""
from __future__ import annotations

import hashlib
import io
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

import numpy as np
from PIL import Image

from ..io import no_room, reserve_space
from .errors import DataError
from .manifest import Manifest

RESAMPLE = Image.Resampling.BILINEAR  # antialiased when shrinking (Pillow scales the support)
PARALLEL_MIN = 2000  # below this, starting processes costs more than it saves
CHUNK = 1024
_ONE_CHANNEL_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "P;L"}


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _mp_context():
    # fork, as torch's DataLoader does on Linux: instant start, and no re-import of
    # the caller's __main__ (a script without a main guard still works). The
    # workers run only PIL and numpy, never torch, so the parent's threads are harmless.
    return get_context("fork" if sys.platform.startswith("linux") else "spawn")


def parse_pixels(text: str, shape: tuple[int, int]) -> np.ndarray:
    """FER2013 csv pixels: H*W space-separated integers 0..255."""
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError:
        raise ValueError("pixels are not all integers") from None
    if values.size != shape[0] * shape[1]:
        raise ValueError(f"{values.size} pixel values, expected {shape[0]}x{shape[1]} = {shape[0] * shape[1]}")
    if values.min() < 0 or values.max() > 255:
        raise ValueError(f"pixel values outside 0..255 (min {values.min()}, max {values.max()})")
    return values.astype(np.uint8).reshape(shape)


def _open(source: str, kind: str, pixel_shape) -> Image.Image:
    if kind == "pixels":
        return Image.fromarray(parse_pixels(source, pixel_shape), mode="L")
    img = Image.open(source)
    try:
        img.load()  # raises OSError on a truncated file instead of returning garbage
    except BaseException:
        img.close()
        raise
    return img


def _transform(img: Image.Image, size: tuple[int, int] | None, channels: int, box) -> np.ndarray:
    if box is not None:
        left, top, right, bottom = (int(v) for v in box)
        # A face box may poke out of the image; crop only what exists.
        left, top = max(left, 0), max(top, 0)
        right, bottom = min(right, img.width), min(bottom, img.height)
        if right <= left or bottom <= top:
            raise ValueError(f"face box {tuple(int(v) for v in box)} lies outside the "
                             f"{img.width}x{img.height} image")
        img = img.crop((left, top, right, bottom))
    mode = "L" if channels == 1 else "RGB"
    if img.mode != mode:
        img = img.convert(mode)
    if size is not None and (img.height, img.width) != size:
        img = img.resize((size[1], size[0]), RESAMPLE)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def _decode_range(out, start, sources, boxes, kind, pixel_shape, size, channels, ref_size):
    """Decode sources into out[start:start+len]; return [(index, message)] of failures."""
    failures = []
    for j, src in enumerate(sources):
        i = start + j
        try:
            img = _open(src, kind, pixel_shape)
            if ref_size is not None and (img.height, img.width) != ref_size:
                raise ValueError(f"image is {img.width}x{img.height} but the first image is "
                                 f"{ref_size[1]}x{ref_size[0]}; pass size= to resize them all")
            out[i] = _transform(img, size or ref_size, channels, None if boxes is None else boxes[j])
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            failures.append((i, f"{type(e).__name__}: {e}"))
    return failures


def _decode_chunk_to_file(path, start, sources, boxes, kind, pixel_shape, size, channels, ref_size):
    out = np.load(path, mmap_mode="r+")
    failures = _decode_range(out, start, sources, boxes, kind, pixel_shape, size, channels, ref_size)
    out.flush()
    return failures


def target_shape(m: Manifest, size, channels) -> tuple[tuple[int, int] | None, int, tuple[int, int] | None]:
    """(size, channels, ref_size): ref_size is set when images must all share one size."""
    size = size or m.native_size
    ref = None
    first = None
    if size is None or (channels or m.native_channels) is None:
        try:
            first = _open(m.sources[0], m.kind, m.pixel_shape)
        except (OSError, ValueError, SyntaxError) as e:
            raise DataError(f"{m.display[0]}: cannot read image: {e}") from None
    if size is None:
        if m.boxes is not None:
            raise DataError(f"{m.name}: face crops differ in size; pass size= (e.g. size=112)")
        ref = (first.height, first.width)
    channels = channels or m.native_channels
    if channels is None:
        channels = 1 if first.mode in _ONE_CHANNEL_MODES else 3
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    return size, channels, ref


def create_npy(path: str, shape: tuple[int, ...]) -> np.memmap:
    """A writable memory map of a new uint8 .npy of ``shape`` at ``path``, its
    bytes reserved on disk (``DiskFull`` if they do not fit)."""
    nbytes = int(np.prod(shape))
    try:
        np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)  # the header; the rest sparse
    except OSError as e:
        raise no_room(path, nbytes, e) from e
    reserve_space(path, os.path.getsize(path) - nbytes, nbytes)
    return np.load(path, mmap_mode="r+")


def _decode_in_processes(m: Manifest, out_path: str, size, channels, ref, workers: int) -> list:
    """``_decode_chunk_to_file`` over chunks of ``m`` in ``workers`` processes; failures as ``_decode_range``'s."""
    boxes = m.boxes
    jobs = [(_decode_chunk_to_file, out_path, s, m.sources[s:s + CHUNK], None if boxes is None else boxes[s:s + CHUNK],
             m.kind, m.pixel_shape, size, channels, ref) for s in range(0, len(m), CHUNK)]
    return _in_processes(m, workers, jobs, "nothing was cached, and the same command decodes them again")


def _in_processes(m: Manifest, workers: int, jobs: list[tuple], after_death: str) -> list:
    """The concatenated lists ``fn(*args)`` returns for each ``(fn, *args)`` of
    ``jobs``, run in ``workers`` processes; a ``DataError`` saying ``after_death``
    if one of them is killed."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context())
    try:
        futures = [pool.submit(*job) for job in jobs]
        return [row for f in futures for row in f.result()]
    except BrokenProcessPool as e:
        # killed (the out-of-memory killer, a signal): no Python error says at which image
        raise DataError(f"{m.name}/{m.split}: a process reading its images died abruptly ({e}); "
                        f"{after_death}") from None
    finally:
        # on an error or Ctrl-C, drop the chunks not started instead of running them all first
        pool.shutdown(wait=True, cancel_futures=True)


def decode_manifest(m: Manifest, size, channels, out_path: str | None = None,
                    workers: int | None = None) -> np.ndarray:
    """All images of ``m`` as uint8 (N, H, W, C); written to ``out_path`` (.npy) if given.

    Raises DataError naming the failing files (unreadable, truncated, wrong size).
    """
    size, channels, ref = target_shape(m, size, channels)
    h, w = size or ref
    shape = (len(m), h, w, channels)
    workers = default_workers() if workers is None else max(1, int(workers))
    boxes = m.boxes
    out = create_npy(out_path, shape) if out_path is not None else np.empty(shape, dtype=np.uint8)
    if out_path is not None and workers > 1 and len(m) >= PARALLEL_MIN:
        out.flush()
        del out
        failures = _decode_in_processes(m, out_path, size, channels, ref, workers)
        out = np.load(out_path, mmap_mode="r+")
    else:
        failures = _decode_range(out, 0, m.sources, boxes, m.kind, m.pixel_shape, size, channels, ref)
    if failures:
        lines = [f"{m.display[i]}: {msg}" for i, msg in failures[:10]]
        more = f"\n... and {len(failures) - 10} more" if len(failures) > 10 else ""
        raise DataError(f"{m.name}/{m.split}: {len(failures)} image(s) could not be decoded:\n"
                        + "\n".join(lines) + more)
    if out_path is not None:
        out.flush()
    return out


# ---------------------------------------------------------------- data check


def content_digest(data: bytes) -> str:
    """The hex digest by which two images count as copies: of a file's bytes, or
    of a pixel row's decoded pixels. The data check's duplicate groups and the
    leak-free test view both use it."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _digest_range(sources, kind, pixel_shape) -> list[str]:
    out = []
    for src in sources:
        if kind == "pixels":
            out.append(content_digest(parse_pixels(src, pixel_shape).tobytes()))
        else:
            with open(src, "rb") as f:
                out.append(content_digest(f.read()))
    return out


def digest_manifest(m: Manifest) -> list[str]:
    """``content_digest`` of every source of ``m`` (reads each file once, no decoding)."""
    return _digest_range(m.sources, m.kind, m.pixel_shape)


def _open_bytes(data: bytes, src: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except Image.UnidentifiedImageError:
        # PIL names an in-memory file by its repr ("<_io.BytesIO object at 0x...>"): name the file instead
        raise Image.UnidentifiedImageError(f"cannot identify image file {src!r}") from None


def _inspect_range(sources, kind, pixel_shape):
    """Per source: (digest hex | None, error | None, width, height, mode, min, max, std)."""
    rows = []
    for src in sources:
        digest = None
        try:
            if kind == "pixels":
                arr = parse_pixels(src, pixel_shape)
                digest = content_digest(arr.tobytes())
                mode, (hh, ww) = "L", arr.shape
            else:
                with open(src, "rb") as f:
                    data = f.read()
                digest = content_digest(data)
                with _open_bytes(data, src) as img:
                    img.load()
                    mode, ww, hh = img.mode, img.width, img.height
                    arr = np.asarray(img)
            rows.append((digest, None, ww, hh, mode, int(arr.min()), int(arr.max()), float(arr.std())))
        except FileNotFoundError as e:
            rows.append((None, f"missing: {e}", 0, 0, "", 0, 0, 0.0))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            rows.append((digest, f"{type(e).__name__}: {e}", 0, 0, "", 0, 0, 0.0))
    return rows


def inspect_manifest(m: Manifest, workers: int | None = None) -> list[tuple]:
    """Hash and pixel statistics of every source of ``m`` (see ``_inspect_range``)."""
    workers = default_workers() if workers is None else max(1, int(workers))
    if workers == 1 or len(m) < PARALLEL_MIN:
        return _inspect_range(m.sources, m.kind, m.pixel_shape)
    jobs = [(_inspect_range, m.sources[s:s + CHUNK], m.kind, m.pixel_shape) for s in range(0, len(m), CHUNK)]
    return _in_processes(m, workers, jobs, "the same command checks them again")
