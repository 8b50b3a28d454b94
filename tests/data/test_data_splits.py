"""Seeded SSL splits: counts, determinism, disjointness, caps, Ada-CM rows."""
import json

import numpy as np
import pytest

from ssfer.classes import RAFDB_ORDER, RAFDB_TRAIN_COUNTS
from ssfer.data import DataError
from ssfer.data import splits as S


def raf_labels():
    # RAF-DB's real train class counts, shuffled as a loader might return them
    labels = np.repeat(np.arange(7), RAFDB_TRAIN_COUNTS)
    return np.random.default_rng(0).permutation(labels)


def assert_partition(s: S.Split, n: int):
    allidx = np.concatenate([s.labeled, s.unlabeled, s.val])
    assert len(allidx) == n and np.array_equal(np.sort(allidx), np.arange(n))
    for part in (s.labeled, s.unlabeled, s.val):
        assert part.dtype == np.int64 and np.all(np.diff(part) > 0)


def test_adacm_table_rows_sum_to_their_budgets():
    assert sorted(S.ADACM_RAFDB) == [100, 400, 1000, 2000, 4000]
    for total, row in S.ADACM_RAFDB.items():
        assert sum(row.values()) == total and list(row) == list(RAFDB_ORDER)
    assert [S.ADACM_RAFDB[t]["fear"] for t in sorted(S.ADACM_RAFDB)] == [10, 40, 100, 200, 250]
    assert [S.ADACM_RAFDB[t]["happiness"] for t in sorted(S.ADACM_RAFDB)] == [15, 60, 150, 300, 625]


@pytest.mark.parametrize("budget, fear, other", [(100, 10, 15), (400, 40, 60), (1000, 100, 150),
                                                 (2000, 200, 300), (4000, 250, 625)])
def test_adacm_rafdb_every_row(budget, fear, other):
    y = raf_labels()
    s = S.adacm_rafdb(y, budget, seed=1)
    counts = np.bincount(y[s.labeled], minlength=7)
    assert counts.tolist() == [fear if c == "fear" else other for c in RAFDB_ORDER]
    assert len(s.labeled) == budget and len(s.val) == 0
    assert_partition(s, len(y))


def test_per_class_counts_and_error_names_the_class():
    y = raf_labels()
    s = S.per_class(y, 25, seed=0, class_names=RAFDB_ORDER, val_per_class=5)
    assert np.bincount(y[s.labeled], minlength=7).tolist() == [25] * 7
    assert np.bincount(y[s.val], minlength=7).tolist() == [5] * 7
    assert_partition(s, len(y))
    with pytest.raises(DataError, match=r"class 'fear' has 281 train samples; asked for 300 labeled \+ 0 val"):
        S.per_class(y, 300, seed=0, class_names=RAFDB_ORDER)


def test_caps_larger_than_a_class_is_an_error_naming_it():
    y = np.array([0] * 5 + [1] * 50)
    with pytest.raises(DataError, match=r"class 'fear' has 5 train samples; asked for 20 labeled"):
        S.total_with_caps(y, 40, [20, 20], seed=0, class_names=["fear", "happy"])


def test_same_seed_same_split_other_seed_other_split():
    y = raf_labels()
    a, b = S.fraction(y, 0.1, seed=7), S.fraction(y, 0.1, seed=7)
    c = S.fraction(y, 0.1, seed=8)
    assert np.array_equal(a.labeled, b.labeled) and np.array_equal(a.unlabeled, b.unlabeled)
    assert not np.array_equal(a.labeled, c.labeled)


def test_same_split_on_every_machine():
    # PCG64 streams are platform independent: these indices are frozen here on purpose
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1, 2, 2, 2, 2])
    s = S.per_class(y, 1, seed=123, val_per_class=1)
    ref = {c: np.flatnonzero(y == c)[np.random.default_rng([123, c]).permutation(4)] for c in range(3)}
    assert s.labeled.tolist() == sorted(int(ref[c][0]) for c in range(3))
    assert s.val.tolist() == sorted(int(ref[c][-1]) for c in range(3))
    assert s.labeled.tolist() == [0, 5, 11] and s.val.tolist() == [2, 7, 10]


def test_budgets_are_nested_and_val_does_not_move():
    y = raf_labels()
    small = S.adacm_rafdb(y, 400, seed=3, val_per_class=20)
    big = S.adacm_rafdb(y, 4000, seed=3, val_per_class=20)
    assert set(small.labeled) <= set(big.labeled)
    assert np.array_equal(small.val, big.val)


def test_fraction_is_stratified_with_exact_total():
    y = raf_labels()
    s = S.fraction(y, 0.05, seed=0, val_fraction=0.1)
    counts = np.bincount(y[s.labeled], minlength=7)
    assert counts.sum() == round(0.05 * len(y))  # 614
    exact = 0.05 * np.array(RAFDB_TRAIN_COUNTS)
    assert np.all(np.abs(counts - exact) < 1)
    assert len(s.val) == round(0.1 * len(y))
    assert_partition(s, len(y))


def test_fraction_gives_every_class_a_label():
    y = np.array([0] * 98 + [1] * 2)
    s = S.fraction(y, 0.1, seed=0)
    assert np.bincount(y[s.labeled]).tolist() == [10, 1]


def test_allocate_water_fills_under_caps():
    assert S.allocate(100, [10, 100, 100]).tolist() == [10, 45, 45]
    assert S.allocate(7, [100, 100, 100]).tolist() == [3, 2, 2]
    assert S.allocate(100, [10, 15, 15, 15, 15, 15, 15]).tolist() == [10, 15, 15, 15, 15, 15, 15]
    with pytest.raises(DataError, match="sum to 20 < 30"):
        S.allocate(30, [10, 10])


def test_caps_by_name_need_every_class():
    y = raf_labels()
    with pytest.raises(DataError, match=r"caps lack classes \['neutral'\]"):
        S.total_with_caps(y, 60, {c: 10 for c in RAFDB_ORDER[:6]}, seed=0, class_names=RAFDB_ORDER)


def test_save_load_roundtrip_and_check(tmp_path):
    y = raf_labels()
    s = S.make_split(y, "per_class", 10, seed=5, class_names=RAFDB_ORDER, val_fraction=0.05)
    path = s.save(tmp_path / "run")
    assert path.name == "split.json" and not list((tmp_path / "run").glob("*.tmp"))
    info = json.loads(path.read_text())["info"]
    assert info["kind"] == "per_class" and info["seed"] == 5 and info["counts"]["labeled"] == [10] * 7
    back = S.Split.load(tmp_path / "run")
    for part in ("labeled", "unlabeled", "val"):
        assert np.array_equal(getattr(back, part), getattr(s, part))
    back.check(y)
    with pytest.raises(DataError, match="labels digest differs"):
        back.check(np.roll(y, 1))
    with pytest.raises(DataError, match="made for 12271 train samples, the data set has 12270"):
        back.check(y[:-1])


def test_load_refuses_overlapping_split(tmp_path):
    (tmp_path / "split.json").write_text(json.dumps({"info": {"n_train": 4}, "labeled": [0, 1],
                                                     "unlabeled": [1, 2], "val": [3]}))
    with pytest.raises(DataError, match="overlap"):
        S.Split.load(tmp_path)


def test_all_kind_labels_everything_but_val():
    y = raf_labels()
    s = S.make_split(y, "all", seed=0, val_per_class=10)
    assert len(s.unlabeled) == 0 and len(s.val) == 70 and len(s.labeled) == len(y) - 70


def test_bad_arguments():
    y = raf_labels()
    with pytest.raises(DataError, match="not 500"):
        S.adacm_rafdb(y, 500, seed=0)
    with pytest.raises(DataError, match="val_per_class or val_fraction, not both"):
        S.per_class(y, 1, seed=0, val_per_class=1, val_fraction=0.1)
    with pytest.raises(DataError, match="seed must be a non-negative int"):
        S.per_class(y, 1, seed=None)
    with pytest.raises(DataError, match="unknown split kind"):
        S.make_split(y, "percent", 1, seed=0)
