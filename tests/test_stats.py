"""ssfer.stats.paired against hand-computed values."""
import math

import numpy as np
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


# ------------------------------------------------------------------ family-wise: Holm
def test_holm_on_hand_computed_cases():
    from ssfer.stats import holm

    # step-down: 0.01*4, then max(0.04, 0.02*3), max(0.06, 0.03*2), max(0.06, 0.5*1)
    assert holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    # every one significant
    assert holm([0.001, 0.002, 0.003]) == pytest.approx([0.003, 0.004, 0.004])
    # none significant; capped at 1
    assert holm([0.4, 0.6, 0.9]) == pytest.approx([1.0, 1.0, 1.0])
    # ties share their adjustment
    assert holm([0.01, 0.01, 0.04]) == pytest.approx([0.03, 0.03, 0.04])
    # a nan (not measured) stays nan and does not count in m
    out = holm([0.01, float("nan"), 0.04])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)
    assert holm([]) == []
    with pytest.raises(ValueError, match="must lie in"):
        holm([1.5])


def test_holm_stops_at_the_first_failure_of_the_step_down():
    from ssfer.stats import holm

    # alpha 0.05, m = 4: 0.01 <= 0.0125 rejects, 0.02 > 0.0167 stops: the rest are kept,
    # even the last p (0.024 < 0.05 alone) -- the step-down reads them in order
    p = [0.01, 0.02, 0.022, 0.024]
    adjusted = holm(p)
    assert [a <= 0.05 for a in adjusted] == [True, False, False, False]
    assert adjusted == pytest.approx([0.04, 0.06, 0.06, 0.06])


def test_holm_matches_a_second_implementation_where_one_is_installed():
    """statsmodels' multipletests(method="holm"), when the environment has it;
    otherwise the definition written out with itertools, as a second reading."""
    import itertools

    from ssfer.stats import holm

    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 8):
        p = rng.uniform(0, 0.2, m).round(3).tolist()
        try:
            from statsmodels.stats.multitest import multipletests
            other = multipletests(p, method="holm")[1].tolist()
        except ImportError:
            # the closed-testing form: p_i's adjustment is the largest, over every
            # intersection containing i, of |S| * min(p_S) (Bonferroni on each set)
            other = []
            for i in range(m):
                worst = 0.0
                for k in range(1, m + 1):
                    for S in itertools.combinations(range(m), k):
                        if i in S:
                            worst = max(worst, min(1.0, k * min(p[j] for j in S)))
                other.append(worst)
        assert holm(p) == pytest.approx(other)


def test_the_paired_p_value_is_scipys_paired_t_test():
    from scipy import stats as st

    from ssfer.stats import paired

    a, b = [74.1, 73.2, 75.0, 74.4, 73.9], [73.5, 73.4, 74.1, 73.6, 73.0]
    assert paired(a, b).p == pytest.approx(st.ttest_rel(a, b).pvalue)
    assert math.isnan(paired([1.0], [0.0]).p)
    assert paired([2.0, 3.0], [1.0, 2.0]).p == 0.0 and paired([1.0, 2.0], [1.0, 2.0]).p == 1.0
