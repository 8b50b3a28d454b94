"""SynthFER: determinism (in process, across processes, golden hash), class
counts, shapes, value range, class separability, argument checks."""
from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ssfer.classes import RAFDB_ORDER, RAFDB_TRAIN_COUNTS
from ssfer.data import synthfer
from ssfer.data.synthfer import load_synthfer, make_synthfer

ROOT = Path(__file__).resolve().parents[1]
HAP, SAD = RAFDB_ORDER.index("happiness"), RAFDB_ORDER.index("sadness")

# sha256 of images.tobytes() + labels.tobytes() for make_synthfer(64, size=32, seed=0).
# If this changes, every SynthFER result in the book changes: only update it on
# purpose, together with the cached runs.
GOLDEN_64_32_0 = "1f12647b41fde94e3ce123ea5f24d7956e2fd51a78067e4d6913bab9d95b65b6"


def digest(d) -> str:
    return hashlib.sha256(d.images.tobytes() + d.labels.tobytes()).hexdigest()


def test_same_arguments_give_identical_bytes():
    a = make_synthfer(40, size=24, channels=3, seed=7, difficulty=1.3)
    b = make_synthfer(40, size=24, channels=3, seed=7, difficulty=1.3)
    assert a.images.tobytes() == b.images.tobytes()
    assert np.array_equal(a.labels, b.labels)


def test_golden_hash_catches_cross_machine_differences():
    assert digest(make_synthfer(64, size=32, seed=0)) == GOLDEN_64_32_0


@pytest.mark.slow  # starts a subprocess
def test_identical_bytes_in_separate_processes():
    code = ("import hashlib; from ssfer.data.synthfer import make_synthfer; "
            "d = make_synthfer(64, size=32, seed=0); "
            "print(hashlib.sha256(d.images.tobytes() + d.labels.tobytes()).hexdigest())")
    outs = set()
    for hashseed in ("1", "2"):  # str hashing differs between these two processes
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED=hashseed)
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        outs.add(res.stdout.strip())
    assert outs == {digest(make_synthfer(64, size=32, seed=0))}


def test_thread_count_and_feature_windows_do_not_change_pixels(monkeypatch):
    ref = make_synthfer(300, size=20, seed=3)  # several chunks at this size
    monkeypatch.setattr(synthfer, "_workers", lambda: 1)
    assert make_synthfer(300, size=20, seed=3).images.tobytes() == ref.images.tobytes()
    # Feature windows must be conservative: drawing every primitive on the whole
    # image gives the same bytes.
    full = lambda self, *a, on=None: (  # noqa: E731
        None if on is not None and not np.any(np.asarray(on) > 0) else (slice(0, self.size), slice(0, self.size)))
    monkeypatch.setattr(synthfer._Canvas, "window", full)
    assert make_synthfer(300, size=20, seed=3).images.tobytes() == ref.images.tobytes()


def test_seeds_and_splits_give_independent_samples():
    base = make_synthfer(60, size=24, seed=0)
    others = [make_synthfer(60, size=24, seed=1), make_synthfer(60, size=24, seed=0, split="test"),
              make_synthfer(60, size=24, seed=0, split="val")]
    for o in others:
        assert not np.array_equal(o.labels, base.labels)
        # Not the same faces in another order either: no image occurs in both.
        seen = {im.tobytes() for im in base.images}
        assert not any(im.tobytes() in seen for im in o.images)
    assert others[1].split == "test" and others[2].split == "val"


def test_class_counts_are_largest_remainder_rounding():
    # n=100 with RAF-DB train frequencies: quotas 10.51, 2.29, 5.84, 38.89, 16.15,
    # 5.75, 20.57 -> floors sum to 96; the 4 largest remainders (hap .89, dis .84,
    # ang .75, neu .57) get one more.
    d = make_synthfer(100, size=16, seed=5)
    assert d.class_counts().tolist() == [10, 2, 6, 39, 16, 6, 21]
    # Equal frequencies, n=10: all remainders tie at 3/7, so the lowest indices win.
    d = make_synthfer(10, size=16, seed=5, class_freq=(1,) * 7)
    assert d.class_counts().tolist() == [2, 2, 2, 1, 1, 1, 1]
    # Zero-frequency classes never appear.
    d = make_synthfer(9, size=16, class_freq=(0, 0, 0, 2, 1, 0, 0))
    assert d.class_counts().tolist() == [0, 0, 0, 6, 3, 0, 0]
    # The full default train split reproduces RAF-DB's counts exactly.
    counts = synthfer._class_counts(12271, tuple(map(float, RAFDB_TRAIN_COUNTS)))
    assert counts.tolist() == list(RAFDB_TRAIN_COUNTS)


def test_labels_are_shuffled():
    labels = make_synthfer(200, size=16, seed=0).labels
    assert not np.all(np.diff(labels) >= 0)


@pytest.mark.parametrize("size,channels", [(48, 1), (32, 3), (17, 1), (64, 3)])
def test_shapes_and_dtypes(size, channels):
    d = make_synthfer(12, size=size, channels=channels, seed=1)
    assert d.images.shape == (12, size, size, channels) and d.images.dtype == np.uint8
    assert d.labels.shape == (12,) and d.labels.dtype == np.int64
    assert d.class_names == RAFDB_ORDER and d.name == "synthfer" and d.split == "train"


def test_rgb_is_tinted_not_grey():
    im = make_synthfer(20, size=32, channels=3, seed=2).images.astype(np.int16)
    assert np.abs(im[..., 0] - im[..., 2]).mean() > 5
    # Skin is warm: red above blue in the face centre (cheeks, between the features).
    centre = im[:, 16:18, 10:12]
    assert (centre[..., 0].mean() > centre[..., 2].mean())


def test_value_range_uses_most_of_0_to_255():
    im = make_synthfer(200, size=32, seed=4).images
    assert im.min() <= 10 and im.max() >= 245
    hist = np.bincount(im.ravel(), minlength=256)
    assert (hist > 0).sum() > 200  # nearly every grey level occurs


def test_difficulty_zero_draws_each_class_prototype_identically():
    d = make_synthfer(70, size=32, seed=0, difficulty=0.0, class_freq=(1,) * 7)
    firsts = []
    for c in range(7):
        ims = d.images[d.labels == c]
        assert all(np.array_equal(im, ims[0]) for im in ims)
        firsts.append(ims[0].tobytes())
    assert len(set(firsts)) == 7


def test_happiness_and_sadness_differ_in_the_mouth_region():
    size = 32
    d = make_synthfer(600, size=size, seed=0, class_freq=(0, 0, 0, 1, 1, 0, 0))
    im = d.images[..., 0].astype(np.float64)
    # The mouth sits near face v=0.46 (+-0.15), u in +-0.3: rows (v+1)*16, cols (u+1)*16.
    mouth = (slice(21, 26), slice(11, 21))
    forehead = (slice(4, 8), slice(11, 21))
    hap, sad = im[d.labels == HAP], im[d.labels == SAD]
    between = np.abs(hap.mean(0) - sad.mean(0))
    within = np.abs(hap[::2].mean(0) - hap[1::2].mean(0))  # sampling noise of a class mean
    assert between[mouth].mean() > 4 * within[mouth].mean()
    assert between[mouth].mean() > 3 * between[forehead].mean()


def test_load_synthfer_defaults_and_passthrough():
    d = load_synthfer("test", size=16)
    assert len(d) == 3068 and d.split == "test"
    small = load_synthfer("val", n=30, size=20, seed=3)
    assert small.images.tobytes() == make_synthfer(30, size=20, seed=3, split="val").images.tobytes()
    with pytest.raises(ValueError, match="split"):
        load_synthfer("dev")


def test_cos_sin_polynomial_is_accurate():
    theta = np.linspace(-0.4, 0.4, 101)
    c, s = synthfer._cos_sin(theta)
    assert np.abs(c - np.cos(theta)).max() < 1e-13 and np.abs(s - np.sin(theta)).max() < 1e-13
    assert abs(synthfer._cos_sin(np.array([0.3]))[0][0] - math.cos(0.3)) < 1e-15


@pytest.mark.parametrize("kwargs,param", [
    (dict(n=0), "n"), (dict(n=-3), "n"), (dict(n=2.5), "n"), (dict(n=True), "n"),
    (dict(size=15), "size"), (dict(size=32.0), "size"),
    (dict(channels=2), "channels"), (dict(channels=4), "channels"),
    (dict(difficulty=-0.1), "difficulty"), (dict(difficulty=float("nan")), "difficulty"),
    (dict(difficulty="hard"), "difficulty"),
    (dict(class_freq=(1, 2, 3)), "class_freq"), (dict(class_freq=(1,) * 8), "class_freq"),
    (dict(class_freq=(1, 1, 1, -1, 1, 1, 1)), "class_freq"), (dict(class_freq=(0,) * 7), "class_freq"),
    (dict(class_freq=(1, 1, 1, float("inf"), 1, 1, 1)), "class_freq"),
    (dict(seed=-1), "seed"), (dict(split="dev"), "split"),
])
def test_bad_arguments_raise_value_error_naming_the_parameter(kwargs, param):
    args = dict(n=4, size=16)
    args.update(kwargs)
    n = args.pop("n")
    with pytest.raises(ValueError, match=rf"\b{param}\b"):
        make_synthfer(n, **args)
