"""Same parameters, same numbers: re-execute the smoke book and compare with nbval.

``python tests/nbval_rerun.py [BUILD_DIR]`` (default ``_build/smoke``, what
``make test`` builds first) copies every executed chapter of ``BUILD_DIR/src``
and lab solution (``BUILD_DIR/solutions``, outside the public book, or
``BUILD_DIR/src`` after ``--with-solutions``) into ``_build/nbval/`` (laid out like the repository, with
its other folders linked, ``results/`` and ``benchmarks/`` among them, so a notebook finds what it found before), then runs
``pytest --nbval`` — strict: every output compared, not ``--nbval-lax`` — over
the copies, with an EMPTY run cache, so every training run is trained again on
this machine. Every printed number, table, glued value and figure must come out
exactly as the build wrote it; ``tests/nbval_sanitize.cfg`` lists the only
things allowed to differ, and why. Figures are compared too (nbval skips
``image/png`` unless told otherwise): by a hash of the decoded pixels, so that a
difference in PNG encoding metadata alone would not count, while any changed
pixel does.

Exit status: pytest's (0 when every cell repeated).
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
SANITIZE = REPO / "tests" / "nbval_sanitize.cfg"


def executed_notebooks(src: Path) -> list[Path]:
    """The executed notebooks of a staged book (``src``) or of the folder of its
    unpublished lab solutions: chapters and solutions (the student versions are
    staged without running)."""
    found = []
    for p in sorted((src / "notebooks").rglob("*.ipynb")):
        nb = nbformat.read(p, as_version=4)
        if nb.metadata.get("ssfer", {}).get("reproduce", {}).get("key"):
            found.append(p)
    return found


def prepare(build_dir: Path, out: Path) -> list[Path]:
    src = build_dir / "src"
    # a lab solution lies in solutions/ or (a teacher's build) in src/, laid out alike
    notebooks = [(root, p) for root in (src, build_dir / "solutions") for p in executed_notebooks(root)]
    if not notebooks:
        raise SystemExit(f"no executed notebook under {src}: build it first "
                         "(ssfer reproduce --profile smoke --build-dir {build_dir})")
    shutil.rmtree(out, ignore_errors=True)
    for root, p in notebooks:
        dst = out / p.relative_to(root)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dst)
    # the chapters ran with the repository as working directory; nbval starts each
    # kernel in the notebook's folder, and a chapter finds the repository's files
    # from there (chapter 6: results/ and benchmarks/ferplus_cpu_bench.json)
    for d in sorted(REPO.iterdir()):
        if d.is_dir() and not d.name.startswith((".", "_")) and d.name != "notebooks":
            (out / d.name).symlink_to(d, target_is_directory=True)
    return [out / p.relative_to(root) for root, p in notebooks]


def pixel_hash(b64: str) -> str:
    """sha256 of a PNG's decoded pixels (mode, size and bytes), not of its file."""
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        im.load()
        return "png-pixels:" + hashlib.sha256(f"{im.mode}{im.size}".encode() + im.tobytes()).hexdigest()


class ComparePixels:
    """pytest plugin: make nbval compare figures, by their pixels."""

    def pytest_collection_modifyitems(self, items):
        for item in items:
            if not hasattr(item, "sanitize") or not hasattr(item.parent, "skip_compare"):
                continue
            item.parent.skip_compare = tuple(k for k in item.parent.skip_compare if k != "image/png")
            sanitize = item.sanitize

            def pixels_then_sanitize(value, _sanitize=sanitize):
                if isinstance(value, str) and value.lstrip().startswith("iVBORw0KGgo"):  # base64 PNG signature
                    return pixel_hash(value)
                return _sanitize(value)

            item.sanitize = pixels_then_sanitize


def main(argv: list[str] | None = None) -> int:
    import pytest

    argv = sys.argv[1:] if argv is None else argv
    build_dir = Path(argv[0] if argv else "_build/smoke").resolve()
    out = (REPO / "_build" / "nbval").resolve()
    notebooks = prepare(build_dir, out)
    cache = Path(tempfile.mkdtemp(prefix="ssfer-nbval-cache-"))
    os.environ["SSFER_CACHE"] = str(cache)  # empty: every run is trained again
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    print(f"re-executing {len(notebooks)} notebooks of {build_dir} with an empty run cache ({cache})", flush=True)
    try:
        return pytest.main(["--nbval", "--nbval-current-env", "--nbval-sanitize-with", str(SANITIZE),
                            "--nbval-cell-timeout", "600", "-p", "no:cacheprovider", "-q",
                            "--rootdir", str(out), *map(str, notebooks)], plugins=[ComparePixels()])
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
