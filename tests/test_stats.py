"""ssfer.stats.paired against hand-computed values."""
import math

import pytest

from ssfer.stats import paired

T975_2 = 4.302652729911275  # t(0.975, 2 degrees of freedom), from a printed table


def test_three_seeds_by_hand():
    # d = (1, 2, 3): mean 2, sd 1, half-width t·1/√3
    p = paired([11, 12, 13], [10, 10, 10])
    assert (p.mean, p.sd, p.wins, p.n) == (2.0, 1.0, 3, 3)
    assert p.low == pytest.approx(2 - T975_2 / math.sqrt(3)) and p.high == pytest.approx(2 + T975_2 / math.sqrt(3))
    assert p.shows_difference is False  # [-0.48, 4.48] holds 0


def test_fractions_scale_to_points_and_mappings_pair_by_seed():
    a = {0: 0.70, 1: 0.72, 2: 0.75, 7: 0.9}
    b = {2: 0.71, 0: 0.68, 1: 0.73}
    p = paired(a, b).scaled(100)  # d = (+2, -1, +4) points on seeds 0, 1, 2
    assert p.mean == pytest.approx(5 / 3)
    assert p.sd == pytest.approx(math.sqrt(((2 - 5 / 3) ** 2 + (-1 - 5 / 3) ** 2 + (4 - 5 / 3) ** 2) / 2))
    assert p.half_width == pytest.approx(T975_2 * p.sd / math.sqrt(3))
    assert (p.wins, p.n) == (2, 3)
    assert str(p) == "+1.67 [-4.58, +7.92], 2/3 wins"


def test_a_clear_difference_excludes_zero():
    p = paired([0.80, 0.81, 0.79, 0.80], [0.70, 0.70, 0.71, 0.69])
    assert p.shows_difference and p.low > 0 and p.wins == 4


def test_one_seed_gives_no_interval():
    p = paired([0.8], [0.7])
    assert p.mean == pytest.approx(0.1) and math.isnan(p.low) and not p.shows_difference
    assert "no interval" in str(p)


@pytest.mark.parametrize("a, b, match", [([1, 2], [1], "one score per seed"), ([], [], "one score per seed"),
                                         ({0: 1}, {1: 1}, "no seed in common"), ([1, 2], {0: 1}, "both"),
                                         ([1, float("nan")], [1, 2], "finite")])
def test_bad_input_is_named(a, b, match):
    with pytest.raises(ValueError, match=match):
        paired(a, b)
