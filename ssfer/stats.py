"""Paired comparison of two methods over seeds.

Methods compared at seed s share the labeled split drawn with seed s, so the
evidence is the per-seed difference d_s = score(a, s) - score(b, s): its mean,
the 95 % t-interval mean(d) ± t(0.975, n-1) · sd(d) / √n, its two-sided
paired-t p value, and how many seeds ``a`` won. An interval that holds 0 means
the runs show no difference.

A planned family of comparisons is read family-wise with :func:`holm`
(Holm–Bonferroni step-down adjusted p values).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import stats as _scipy_stats


@dataclass(frozen=True)
class Paired:
    """The paired difference a - b over n seeds (in the scores' own unit)."""

    mean: float
    sd: float            # sample standard deviation of the differences (n - 1); nan for one seed
    low: float           # 95 % t-interval; nan for one seed
    high: float
    wins: int            # seeds where a scored strictly higher than b
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def shows_difference(self) -> bool:
        """True when the interval excludes 0 (never with fewer than 2 seeds)."""
        return self.n >= 2 and (self.low > 0 or self.high < 0)

    @property
    def p(self) -> float:
        """Two-sided p value of the paired t-test of mean difference 0 (nan for one
        seed; 0 or 1 when every seed's difference is the same)."""
        if self.n < 2:
            return math.nan
        if self.sd == 0:
            return 1.0 if self.mean == 0 else 0.0
        t = self.mean / (self.sd / math.sqrt(self.n))
        return float(2 * _scipy_stats.t.sf(abs(t), self.n - 1))

    def scaled(self, k: float) -> "Paired":
        """The same comparison in another unit (e.g. k=100: fractions to points)."""
        return Paired(self.mean * k, self.sd * abs(k), *sorted((self.low * k, self.high * k)), self.wins, self.n)

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.mean:+.2f} (one seed: no interval)"
        return f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}], {self.wins}/{self.n} wins"


def paired(a: Sequence[float] | Mapping, b: Sequence[float] | Mapping, confidence: float = 0.95) -> Paired:
    """Compare per-seed scores of two methods.

    a, b: sequences in the same seed order, or mappings seed -> score (compared
    on the seeds both hold; at least one). Raises ValueError on lengths that
    differ, no common seed, or a non-finite score.
    """
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        seeds = sorted(set(a) & set(b))
        if not seeds:
            raise ValueError(f"paired: no seed in common (a has {sorted(a)}, b has {sorted(b)})")
        xa, xb = [float(a[s]) for s in seeds], [float(b[s]) for s in seeds]
    elif isinstance(a, Mapping) or isinstance(b, Mapping):
        raise ValueError("paired: give both scores as sequences or both as seed -> score mappings")
    else:
        xa, xb = [float(v) for v in a], [float(v) for v in b]
        if len(xa) != len(xb) or not xa:
            raise ValueError(f"paired: need one score per seed for both methods, got {len(xa)} and {len(xb)}")
    if not all(math.isfinite(v) for v in xa + xb):
        raise ValueError("paired: scores must be finite numbers")
    if not 0 < confidence < 1:
        raise ValueError(f"paired: confidence must be in (0, 1), got {confidence}")
    d = [x - y for x, y in zip(xa, xb)]
    n = len(d)
    mean = sum(d) / n
    wins = sum(x > y for x, y in zip(xa, xb))
    if n < 2:
        return Paired(mean, math.nan, math.nan, math.nan, wins, n)
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return Paired(mean, sd, mean - half, mean + half, wins, n)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p values, in the order given.

    Sort the m p values ascending; the i-th smallest (i = 1..m) is adjusted to
    max over j <= i of min(1, (m - j + 1) * p_(j)). A comparison is significant
    family-wise at level alpha when its adjusted p is at most alpha: the step-down
    procedure that tests p_(1) against alpha/m, p_(2) against alpha/(m - 1), and
    stops at the first that fails. Tied p values get the same adjusted value. A
    nan (a comparison not measured) stays nan and does not count in m."""
    values = [float(v) for v in p_values]
    if any(not (math.isnan(v) or 0.0 <= v <= 1.0) for v in values):
        raise ValueError(f"holm: p values must lie in [0, 1] (or be nan), got {values}")
    measured = sorted((v, i) for i, v in enumerate(values) if not math.isnan(v))
    m = len(measured)
    out = [math.nan] * len(values)
    running = 0.0
    for rank, (v, i) in enumerate(measured):
        running = max(running, min(1.0, (m - rank) * v))
        out[i] = running   # the running maximum: tied p values come out equal
    return out
