"""Fixtures of the data tests: the real FER2013 / FERPlus tars, unpacked once.

The tars live outside the repository ($SSFER_SHARED_DATA, default
<repo>/../shared/data); tests that need them are marked ``realdata`` and skip,
saying why, when they are absent.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # fixtures_data, whatever pytest's import mode

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SSFER_SHARED_DATA", REPO.parent / "shared" / "data"))
SHA256 = {  # from the shared data README: a different tar gives different counts
    "fer2013.tar": "458e4af2b5332c8d0e8b0cd63e45b379fb7224d0cbcd7ac2f71ddec5383101b2",  # the restored copy
    "ferplus.tar": "6d2de5fea115ff1e78f02bdc52a286732a60c7701c2454958931e48e27df7510",
}


def _unpack(name: str, factory) -> Path:
    tar = SHARED / name
    if not tar.is_file():
        pytest.skip(f"{tar} not found: set SSFER_SHARED_DATA to the folder holding {name}")
    h = hashlib.sha256()
    with open(tar, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    assert h.hexdigest() == SHA256[name], f"{tar} is not the tar the README describes (sha256 differs)"
    out = factory.mktemp(name.split(".")[0])
    if shutil.which("tar"):  # ten times faster than tarfile on 36k small members
        subprocess.run(["tar", "-xf", str(tar), "-C", str(out)], check=True)
    else:
        with tarfile.open(tar) as t:
            data_filter = getattr(tarfile, "data_filter", None)  # refuses links and paths out of `out`
            t.extractall(out, **({"filter": data_filter} if data_filter else {}))
    return out


@pytest.fixture(scope="session")
def fer2013_root(tmp_path_factory):
    root = _unpack("fer2013.tar", tmp_path_factory)
    yield root
    shutil.rmtree(root, ignore_errors=True)  # 36k files: do not leave them in pytest's kept temp folders


@pytest.fixture(scope="session")
def ferplus_root(tmp_path_factory):
    root = _unpack("ferplus.tar", tmp_path_factory)
    yield root / "ferplus"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssfer-cache")
    yield root
    shutil.rmtree(root, ignore_errors=True)
