"""SynthFER: procedurally drawn cartoon faces, the embedded default data set.

Each image is rendered from a handful of numbers: an expression vector (mouth
curve / opening / width / corner tilt, brow height / slope / arch, eye opening,
nose wrinkle, smile folds, teeth), an identity (face shape, eye spacing, tones,
hair), a pose, lighting, an optional occluder, blur and sensor noise. Each class
has a prototype expression; images are prototype + noise, sometimes blended with
a neighbouring expression (fear/surprise, anger/disgust, sadness/neutral), so a
share of them is genuinely ambiguous. Everything but the prototypes scales with
``difficulty`` (0 = clean prototypes on a fixed face).

Reproducibility: the same arguments give byte-identical arrays on any machine.
All randomness comes from ``numpy.random.Generator(PCG64)`` through uniform draws
only (no ziggurat tails that call libm), per-image rotations use a polynomial
instead of libm ``cos``/``sin``, and the per-pixel path uses only IEEE correctly
rounded operations (+, -, *, /, sqrt, min, max, clip, floor). Rendering is
vectorised over chunks of images and windowed per facial feature; chunks run on
a thread pool (numpy releases the GIL), each writing its own slice.

SynthFER exists to teach and to test; its numbers are not results on real faces.
"""
from __future__ import annotations

import hashlib
import math
import os
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import numpy as np

from ssfer.classes import RAFDB_LOOKALIKE, RAFDB_ORDER, RAFDB_TRAIN_COUNTS
from ssfer.data.dataset import FERData

__all__ = ["make_synthfer", "load_synthfer", "EXPRESSION_PARAMS", "PROTOTYPES", "DEFAULT_SIZES"]

# Default split sizes: RAF-DB basic's train / test sizes (RAF-DB has no val split;
# a val split gets the test size).
DEFAULT_SIZES: dict[str, int] = {"train": 12271, "test": 3068, "val": 3068}
_SPLITS = ("train", "test", "val")
# Salt so that seed 0 here does not share a stream with other seed-0 users.
_SALT = 0x5F3E_FE12

EXPRESSION_PARAMS: tuple[str, ...] = (
    "mouth_curve",   # >0 corners up (smile), <0 corners down; face units
    "mouth_open",    # gap between the lips at the centre
    "mouth_width",   # half width
    "mouth_tilt",    # one corner raised (sign drawn per image): disgust
    "brow_height",   # >0 raised
    "brow_slope",    # >0 inner ends down (anger), <0 inner ends up (sadness, fear)
    "brow_arch",     # curvature of the brow
    "eye_open",      # 1 = relaxed
    "nose_wrinkle",  # opacity of wrinkle lines on the nose bridge
    "cheek",         # opacity of smile folds (nasolabial lines)
    "teeth",         # share of the mouth opening showing teeth
)

# Prototypes, one row per class in RAFDB_ORDER, one column per EXPRESSION_PARAMS.
PROTOTYPES = np.array([
    #  curve  open   width  tilt   b_h    b_sl   arch   eye   wrink cheek teeth
    [-0.010, 0.170, 0.120, 0.000, 0.080, 0.000, 0.040, 1.50, 0.00, 0.00, 0.00],  # surprise
    [-0.045, 0.080, 0.240, 0.000, 0.055, -0.050, 0.010, 1.35, 0.00, 0.00, 0.50],  # fear
    [-0.030, 0.020, 0.190, 0.050, -0.030, 0.020, 0.010, 0.70, 1.00, 0.40, 0.30],  # disgust
    [0.085, 0.050, 0.260, 0.000, 0.000, 0.000, 0.020, 0.65, 0.00, 1.00, 0.80],  # happiness
    [-0.060, 0.000, 0.200, 0.000, 0.010, -0.060, 0.010, 0.80, 0.00, 0.00, 0.00],  # sadness
    [-0.020, 0.015, 0.200, 0.000, -0.055, 0.070, 0.000, 0.85, 0.50, 0.00, 0.30],  # anger
    [0.000, 0.000, 0.200, 0.000, 0.000, 0.000, 0.020, 1.00, 0.00, 0.00, 0.00],  # neutral
])
# Per-parameter noise at difficulty 1 (same units as PROTOTYPES).
_EXPR_SD = np.array([0.022, 0.028, 0.030, 0.015, 0.025, 0.025, 0.012, 0.16, 0.22, 0.22, 0.22])
_NEUTRAL = RAFDB_ORDER.index("neutral")

# Pixels per rendering chunk: keeps each temporary array cache-sized.
_CHUNK_PIXELS = 1 << 17
# Extra pixels around each feature's bounding box, so coverage outside is exactly 0.
_MARGIN_PX = 2.0


# ----------------------------------------------------------------------------
# argument checks and label counts

def _check_args(n, size, channels, seed, difficulty, class_freq, split) -> tuple[Fraction, ...]:
    def is_int(x):
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    if not is_int(n) or n <= 0:
        raise ValueError(f"make_synthfer: n must be a positive int, got {n!r}")
    if not is_int(size) or size < 16:
        raise ValueError(f"make_synthfer: size must be an int >= 16, got {size!r}")
    if not is_int(channels) or channels not in (1, 3):
        raise ValueError(f"make_synthfer: channels must be 1 or 3, got {channels!r}")
    if not is_int(seed) or seed < 0:
        raise ValueError(f"make_synthfer: seed must be a non-negative int, got {seed!r}")
    if isinstance(difficulty, bool) or not isinstance(difficulty, (int, float, np.floating, np.integer)) \
            or not math.isfinite(difficulty) or difficulty < 0:
        raise ValueError(f"make_synthfer: difficulty must be a finite number >= 0, got {difficulty!r}")
    if split not in _SPLITS:
        raise ValueError(f"make_synthfer: split must be one of {_SPLITS}, got {split!r}")
    freq = RAFDB_TRAIN_COUNTS if class_freq is None else tuple(class_freq)
    if len(freq) != len(RAFDB_ORDER):
        raise ValueError(f"make_synthfer: class_freq must have {len(RAFDB_ORDER)} entries "
                         f"(one per class of {RAFDB_ORDER}), got {len(freq)}")
    try:
        fracs = tuple(Fraction(float(f)) for f in freq)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"make_synthfer: class_freq must hold finite numbers, got {class_freq!r}") from None
    if any(f < 0 for f in fracs) or sum(fracs) <= 0:
        raise ValueError(f"make_synthfer: class_freq must be >= 0 with a positive sum, got {class_freq!r}")
    return fracs


def _class_counts(n: int, freq: tuple[Fraction, ...]) -> np.ndarray:
    """Largest-remainder rounding of n*freq/sum(freq), in exact arithmetic.

    Ties in the remainder go to the lower class index, so the counts are a pure
    function of (n, freq).
    """
    total = sum(freq)
    quotas = [n * f / total for f in freq]
    counts = [math.floor(q) for q in quotas]
    order = sorted(range(len(freq)), key=lambda k: (-(quotas[k] - counts[k]), k))
    for k in order[: n - sum(counts)]:
        counts[k] += 1
    return np.array(counts, dtype=np.int64)


def _split_key(split: str) -> int:
    # Python's hash() of a str is randomised per process; sha256 is stable.
    return int.from_bytes(hashlib.sha256(split.encode()).digest()[:8], "little")


# ----------------------------------------------------------------------------
# per-image scene parameters (small arrays, float64)

def _uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return lo + (hi - lo) * rng.random(n)


def _gauss(rng: np.random.Generator, shape) -> np.ndarray:
    """Unit-variance bell-shaped noise from 4 uniforms (Irwin-Hall).

    Bounded by +-2*sqrt(3) and free of libm calls, unlike the ziggurat sampler.
    """
    u = rng.random((4,) + tuple(np.atleast_1d(shape)))
    return ((u[0] + u[1]) + (u[2] + u[3]) - 2.0) * math.sqrt(3.0)


def _cos_sin(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin for |theta| <= 0.4 by Taylor polynomials (error < 1e-13).

    Elementwise +,* only, so the result is the same on every machine, unlike
    libm or SIMD cos/sin which may differ by an ulp.
    """
    t2 = theta * theta
    c = 1.0 + t2 * (-1 / 2 + t2 * (1 / 24 + t2 * (-1 / 720 + t2 * (1 / 40320 + t2 * (-1 / 3628800 + t2 / 479001600)))))
    s = theta * (1.0 + t2 * (-1 / 6 + t2 * (1 / 120 + t2 * (-1 / 5040 + t2 * (1 / 362880 + t2 * (-1 / 39916800))))))
    return c, s


def _sample_scene(rng: np.random.Generator, labels: np.ndarray, d: float) -> dict[str, np.ndarray]:
    n = len(labels)
    u = lambda lo, hi: _uniform(rng, lo, hi, n)  # noqa: E731
    dc = min(d, 1.0)  # for probabilities and other quantities that must stay in [0, 1]
    p: dict[str, np.ndarray] = {}

    # Expression: prototype, sometimes blended towards a neighbour, pulled towards
    # neutral by a random intensity, plus per-parameter noise.
    proto = PROTOTYPES[labels]
    blend = (rng.random(n) < 0.4 * dc) * u(0.0, 0.5) * dc
    neigh = PROTOTYPES[np.asarray(RAFDB_LOOKALIKE)[labels]]
    expr = proto + blend[:, None] * (neigh - proto)
    intensity = 1.0 - 0.45 * dc * rng.random(n)
    expr = PROTOTYPES[_NEUTRAL] + intensity[:, None] * (expr - PROTOTYPES[_NEUTRAL])
    expr = expr + d * _EXPR_SD * _gauss(rng, (n, len(EXPRESSION_PARAMS)))
    lo = np.array([-0.2, 0.0, 0.08, -0.1, -0.15, -0.15, -0.05, 0.15, 0.0, 0.0, 0.0])
    hi = np.array([0.2, 0.3, 0.34, 0.1, 0.15, 0.15, 0.08, 1.9, 1.0, 1.0, 1.0])
    expr = np.clip(expr, lo, hi)
    for k, name in enumerate(EXPRESSION_PARAMS):
        p[name] = expr[:, k]
    # Which corner rises is a coin flip (a fixed side at difficulty 0).
    p["mouth_tilt"] = p["mouth_tilt"] * np.where(rng.random(n) < 0.5 * dc, -1.0, 1.0)

    # Identity. Geometry spreads stop growing at difficulty 2 so that features
    # keep their order on the face (nose above mouth, eyes inside the head).
    di = min(d, 2.0)
    p["face_w"] = 1.0 + 0.08 * di * _gauss(rng, n).clip(-2, 2)
    p["face_h"] = 1.0 + 0.06 * di * _gauss(rng, n).clip(-2, 2)
    p["eye_x"] = 0.25 + 0.02 * di * _gauss(rng, n).clip(-2, 2)
    p["eye_y"] = -0.12 + 0.02 * di * _gauss(rng, n).clip(-2, 2)
    p["eye_size"] = 1.1 + 0.08 * di * _gauss(rng, n).clip(-2, 2)
    p["gaze"] = 0.025 * dc * _gauss(rng, n).clip(-1.5, 1.5)
    p["nose_y"] = 0.2 + 0.02 * di * _gauss(rng, n).clip(-2, 2)
    p["mouth_y"] = 0.46 + 0.025 * di * _gauss(rng, n).clip(-2, 2)
    p["brow_w"] = 0.038 + 0.006 * di * _gauss(rng, n).clip(-2, 2)
    p["hairline"] = -0.5 + 0.05 * di * _gauss(rng, n).clip(-2, 2)
    p["hair_curve"] = 0.8 + 0.15 * di * _gauss(rng, n).clip(-2, 2)
    p["hair_on"] = (rng.random(n) >= 0.1 * dc).astype(np.float64)
    mid = lambda centre, spread: centre + spread * dc * (2.0 * rng.random(n) - 1.0)  # noqa: E731
    p["skin"] = mid(0.68, 0.2)
    p["bg"] = mid(0.45, 0.3)
    p["hair"] = mid(0.22, 0.18)
    p["ink"] = mid(0.12, 0.08)      # brows, lines, pupils
    p["sclera"] = mid(0.93, 0.06)
    p["shirt"] = mid(0.4, 0.35)
    # Colour tints for RGB (multiplicative, per channel).
    p["skin_r"] = 1.0 + u(0.04, 0.14)
    p["skin_b"] = 1.0 - u(0.06, 0.18)
    for ch in ("bg_r", "bg_g", "bg_b"):
        p[ch] = 1.0 + 0.15 * (2.0 * rng.random(n) - 1.0)

    # Pose: rotation (the polynomial cos/sin is exact to |theta| <= 0.4), shift, scale.
    theta = np.clip(0.15 * di * (2.0 * rng.random(n) - 1.0), -0.4, 0.4)
    p["cos"], p["sin"] = _cos_sin(theta)
    p["tx"] = 0.05 * di * (2.0 * rng.random(n) - 1.0)
    p["ty"] = 0.05 * di * (2.0 * rng.random(n) - 1.0)
    p["scale"] = 1.0 + 0.08 * di * (2.0 * rng.random(n) - 1.0)

    # Lighting: gain and a linear gradient across the image.
    p["gain"] = np.clip(1.0 + 0.1 * d * (2.0 * rng.random(n) - 1.0), 0.3, 2.0)
    p["light_x"] = 0.15 * d * (2.0 * rng.random(n) - 1.0)
    p["light_y"] = 0.15 * d * (2.0 * rng.random(n) - 1.0)

    # Occluder: a rectangle (mask, paper, microphone) or a hand-like blob.
    occ = rng.random(n) < 0.15 * dc
    hand = rng.random(n) < 0.5
    p["rect_on"] = (occ & ~hand).astype(np.float64)
    p["hand_on"] = (occ & hand).astype(np.float64)
    p["occ_u"] = u(-0.55, 0.55)
    p["occ_v"] = u(-0.3, 0.85)
    p["occ_a"] = u(0.12, 0.3)
    p["occ_b"] = u(0.1, 0.3)
    p["occ_col"] = u(0.0, 1.0)
    p["hand_col"] = p["skin"] * u(0.9, 1.1)

    # Sensor: blur amount (blend towards a 3x3 binomial blur) and noise level.
    p["blur"] = 0.6 * dc * rng.random(n)
    p["noise"] = d * u(0.005, 0.025)
    return p


# ----------------------------------------------------------------------------
# rendering one chunk (float32 per-pixel work)

class _Canvas:
    """A chunk of B images with per-image face->image transforms."""

    def __init__(self, p: dict[str, np.ndarray], size: int, channels: int):
        self.size = size
        self.B = len(p["cos"])
        self.p64 = p
        f32 = lambda a: np.asarray(a, dtype=np.float32).reshape(-1, 1, 1)  # noqa: E731
        self.P = {k: f32(v) for k, v in p.items()}
        c, s, sc, tx, ty = p["cos"], p["sin"], p["scale"], p["tx"], p["ty"]
        # Image point (x, y) -> face point: u = (c(x-tx) + s(y-ty))/sc, v = (-s(x-tx) + c(y-ty))/sc.
        self.ua = f32(c / sc), f32(s / sc), f32(-(c * tx + s * ty) / sc)
        self.va = f32(-s / sc), f32(c / sc), f32((s * tx - c * ty) / sc)
        self.inv_px = f32(size * sc / 2.0)  # face units -> pixels
        self.grid = ((2.0 * np.arange(size) + 1.0) / size - 1.0).astype(np.float32)
        self.img = np.empty((self.B, size, size), dtype=np.float32)
        # Where skin is (for the RGB tint); grey images do not need it.
        self.skin_mask = np.zeros((self.B, size, size), dtype=np.float32) if channels == 3 else None

    def window(self, u_lo, u_hi, v_lo, v_hi, on=None) -> tuple[slice, slice] | None:
        """Pixel window holding a face-space box for every image (or those with `on`)."""
        p = self.p64
        c, s, sc, tx, ty = p["cos"], p["sin"], p["scale"], p["tx"], p["ty"]
        xs, ys = [], []
        for uu in (u_lo, u_hi):
            for vv in (v_lo, v_hi):
                xs.append(tx + sc * (c * uu - s * vv))
                ys.append(ty + sc * (s * uu + c * vv))
        xs, ys = np.array(xs), np.array(ys)
        if on is not None:
            sel = np.asarray(on) > 0
            if not sel.any():
                return None
            xs, ys = xs[:, sel], ys[:, sel]
        half = self.size / 2.0
        r0 = max(0, math.floor((ys.min() + 1.0) * half - 0.5 - _MARGIN_PX))
        r1 = min(self.size, math.ceil((ys.max() + 1.0) * half - 0.5 + _MARGIN_PX) + 1)
        c0 = max(0, math.floor((xs.min() + 1.0) * half - 0.5 - _MARGIN_PX))
        c1 = min(self.size, math.ceil((xs.max() + 1.0) * half - 0.5 + _MARGIN_PX) + 1)
        if r0 >= r1 or c0 >= c1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def coords(self, win) -> tuple[np.ndarray, np.ndarray]:
        rs, cs = win
        X, Y = self.grid[None, None, cs], self.grid[None, rs, None]
        a1, a2, a0 = self.ua
        b1, b2, b0 = self.va
        return a1 * X + (a2 * Y + a0), b1 * X + (b2 * Y + b0)

    def affine(self, win, cu, cv, su, sv) -> tuple[np.ndarray, np.ndarray]:
        """(u - cu) * su and (v - cv) * sv on a window.

        Both are affine in the pixel grid, so each costs one broadcast add.
        """
        rs, cs = win
        X, Y = self.grid[None, None, cs], self.grid[None, rs, None]
        a1, a2, a0 = self.ua
        b1, b2, b0 = self.va
        return ((a1 * su) * X + ((a2 * su) * Y + (a0 - cu) * su),
                (b1 * sv) * X + ((b2 * sv) * Y + (b0 - cv) * sv))

    def ellipse(self, win, cu, cv, ru, rv) -> np.ndarray:
        """Approximate signed distance to an axis-aligned (in face space) ellipse."""
        p, q = self.affine(win, cu, cv, 1.0 / ru, 1.0 / rv)
        gp, gq = self.affine(win, cu, cv, 2.0 / (ru * ru), 2.0 / (rv * rv))
        return _ellipse_pq(p, q, gp, gq)

    def cover(self, dist: np.ndarray) -> np.ndarray:
        """Anti-aliased coverage from a signed distance in face units (in place)."""
        dist *= -self.inv_px
        dist += 0.5
        return np.clip(dist, 0.0, 1.0, out=dist)

    def paint(self, win, alpha: np.ndarray, colour) -> None:
        view = self.img[:, win[0], win[1]]
        view += alpha * (colour - view)


def _ellipse_pq(p, q, gp, gq) -> np.ndarray:
    """F / |grad F| with F = p^2 + q^2 - 1, p = (u-cu)/ru, q = (v-cv)/rv and
    grad F = (gp, gq) = (2(u-cu)/ru^2, 2(v-cv)/rv^2): exact on the outline, to
    first order near it, and of the right sign everywhere. Consumes its inputs."""
    gp *= gp
    gq *= gq
    gp += gq
    np.sqrt(gp, out=gp)
    gp += 1e-6
    p *= p
    q *= q
    p += q
    p -= 1.0
    p /= gp
    return p


def _ellipse(u, v, cu, cv, ru, rv) -> np.ndarray:
    """Approximate signed distance to an ellipse, from face coordinates."""
    p = (u - cu) * (1.0 / ru)
    q = (v - cv) * (1.0 / rv)
    return _ellipse_pq(p, q, p * (2.0 / ru), q * (2.0 / rv))


def _stroke(t, s, A, Bc, C, t0, t1, half) -> np.ndarray:
    """Signed distance to a thick curve s = A + B t + C t^2, t in [t0, t1].

    Perpendicular distance to the curve approximated by |s - f(q)| / sqrt(1 + f'(q)^2)
    at the clamped parameter q, combined with the overshoot t - q for round ends.
    """
    q = np.clip(t, t0, t1)
    slope = Bc + (2.0 * C) * q
    ds = s - (A + q * (Bc + C * q))
    ds *= ds
    slope *= slope
    slope += 1.0
    ds /= slope
    q -= t
    q *= q
    ds += q
    np.sqrt(ds, out=ds)
    ds -= half
    return ds


def _render(p: dict[str, np.ndarray], size: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    cv = _Canvas(p, size, channels)
    P = cv.P
    full = (slice(0, size), slice(0, size))

    # Background and shoulders.
    cv.img[...] = P["bg"]
    win = cv.window(-0.95, 0.95, 0.9, 2.2)
    if win is not None:
        cv.paint(win, cv.cover(cv.ellipse(win, 0.0, 1.55, 0.95, 0.62)), P["shirt"])

    # Head (ears first, so the face outline overlaps them); skin mask for the RGB tint.
    rx, ry = 0.64 * P["face_w"], 0.84 * P["face_h"]
    rx64, ry64 = 0.64 * p["face_w"], 0.84 * p["face_h"]
    ear_u = rx64 * 0.96
    win = cv.window(-ear_u - 0.12, ear_u + 0.12, p["eye_y"] - 0.12, p["eye_y"] + 0.3)
    if win is not None:
        uu, vv = cv.coords(win)
        a = cv.cover(_ellipse(np.abs(uu), vv, rx * 0.96, P["eye_y"] + 0.09, 0.09, 0.15))
        cv.paint(win, a, P["skin"] * 0.92)
        if cv.skin_mask is not None:
            cv.skin_mask[:, win[0], win[1]] = a
    win = cv.window(-rx64, rx64, 0.06 - ry64, 0.06 + ry64)
    head = cv.cover(cv.ellipse(win, 0.0, 0.06, rx, ry))
    cv.paint(win, head, P["skin"])
    if cv.skin_mask is not None:
        sm = cv.skin_mask[:, win[0], win[1]]
        np.maximum(sm, head, out=sm)
    del head

    # Hair: a cap slightly larger than the head, above a parabolic hairline.
    hr_u, hr_v = rx64 * 1.06, ry64 * 1.04
    win = cv.window(-hr_u, hr_u, 0.03 - hr_v, p["hairline"] + p["hair_curve"] * hr_u * hr_u, on=p["hair_on"])
    if win is not None:
        hair = cv.cover(cv.ellipse(win, 0.0, 0.03, rx * 1.06, ry * 1.04))
        uu, vv = cv.coords(win)
        uu *= uu
        uu *= P["hair_curve"]
        uu += P["hairline"]
        vv -= uu
        np.minimum(hair, cv.cover(vv), out=hair)
        hair *= P["hair_on"]
        cv.paint(win, hair, P["hair"])

    # Eyes (mirrored through |u|): sclera, pupil clipped to the sclera, outline.
    ex, ey = P["eye_x"], P["eye_y"]
    erx = 0.12 * P["eye_size"]
    ery = 0.075 * P["eye_size"] * P["eye_open"]
    ext = 0.13 * p["eye_size"] + 0.03
    eyt = 0.075 * p["eye_size"] * p["eye_open"] + 0.03
    win = cv.window(-(p["eye_x"] + ext), p["eye_x"] + ext, p["eye_y"] - eyt, p["eye_y"] + eyt)
    if win is not None:
        uu, vv = cv.coords(win)
        au = np.abs(uu)
        de = _ellipse(au, vv, ex, ey, erx, ery)
        sclera = cv.cover(de.copy())
        cv.paint(win, sclera, P["sclera"])
        pupil = cv.cover(_ellipse(au, vv, ex + P["gaze"], ey, 0.05 * P["eye_size"], 0.05 * P["eye_size"]))
        cv.paint(win, np.minimum(pupil, sclera), P["ink"])
        np.abs(de, out=de)
        de -= 0.016
        cv.paint(win, cv.cover(de), P["ink"])

    # Brows (mirrored): a thick quadratic in t = |u| - eye_x.
    yb = P["eye_y"] - 0.17 - P["brow_height"]
    bl = 0.13
    yb64 = p["eye_y"] - 0.17 - p["brow_height"]
    # Curve spans [yb - arch - |slope|, yb + |slope|], plus half the thickness.
    win = cv.window(-(p["eye_x"] + bl + 0.06), p["eye_x"] + bl + 0.06, yb64 - 0.3, yb64 + 0.22)
    if win is not None:
        uu, vv = cv.coords(win)
        t = np.abs(uu) - ex
        A = yb - P["brow_arch"]
        db = _stroke(t, vv, A, -P["brow_slope"] / bl, P["brow_arch"] / (bl * bl), -bl, bl, P["brow_w"])
        cv.paint(win, cv.cover(db), P["ink"])

    # Nose: a small U-shaped base; wrinkles: two short slanted lines each side.
    ny = P["nose_y"]
    win = cv.window(-0.2, 0.2, p["eye_y"] + 0.02, p["nose_y"] + 0.06)
    if win is not None:
        uu, vv = cv.coords(win)
        dn = _stroke(uu, vv, ny, 0.0, -3.0, -0.07, 0.07, 0.014)
        cv.paint(win, cv.cover(dn), P["ink"])
        t = np.abs(uu) - 0.085
        for k in range(2):
            dw = _stroke(t, vv, ey + 0.09 + 0.05 * k, 0.7, 0.0, -0.035, 0.035, 0.016)
            a = cv.cover(dw)
            a *= 0.85 * P["nose_wrinkle"]
            cv.paint(win, a, P["ink"])

    # Smile folds (mirrored), drawn as u = g(v) from beside the nose to the mouth corner.
    w, my, mk, mo = P["mouth_width"], P["mouth_y"], P["mouth_curve"], P["mouth_open"]
    win = cv.window(-(p["mouth_width"] + 0.12), p["mouth_width"] + 0.12, p["nose_y"] - 0.05, p["mouth_y"] + 0.12)
    if win is not None:
        uu, vv = cv.coords(win)
        tv = vv - ny
        span = my - ny
        gB = (w + 0.04 - 0.12) / span
        df = _stroke(tv, np.abs(uu), 0.12, gB, 0.0, 0.0, span + 0.02, 0.016)
        a = cv.cover(df)
        a *= 0.7 * P["cheek"]
        cv.paint(win, a, P["ink"])

    # Mouth: dark interior between two lip curves, teeth, lip lines. The lips sit
    # symmetrically about the mid curve v = my + k(1 - (u/w)^2) + tilt*u/w, each
    # `open`/2 away at the centre, so an open neutral mouth is an oval.
    tilt = P["mouth_tilt"] / w
    up_k = mk - 0.5 * mo
    lo_k = mk + 0.5 * mo
    ext_v = np.abs(p["mouth_curve"]) + p["mouth_open"] + np.abs(p["mouth_tilt"]) + 0.06
    win = cv.window(-(p["mouth_width"] + 0.06), p["mouth_width"] + 0.06, p["mouth_y"] - ext_v, p["mouth_y"] + ext_v)
    if win is not None:
        uu, vv = cv.coords(win)
        bow = 1.0 - uu * uu / (w * w)
        mid = my + tilt * uu
        f_up = mid + up_k * bow
        f_lo = mid + lo_k * bow
        inside = np.maximum(np.maximum(f_up - vv, vv - f_lo), np.abs(uu) - w)
        cv.paint(win, cv.cover(inside.copy()), P["ink"])
        teeth_edge = f_up + P["teeth"] * 0.5 * (f_lo - f_up)
        tooth = cv.cover(np.maximum(inside, vv - teeth_edge))
        cv.paint(win, tooth, P["sclera"])
        for k in (up_k, lo_k):
            dl = _stroke(uu, vv, my + k, tilt, -k / (w * w), -w, w, 0.027)
            cv.paint(win, cv.cover(dl), P["ink"] + 0.25 * P["skin"])

    # Occluders.
    win = cv.window(p["occ_u"] - p["occ_a"], p["occ_u"] + p["occ_a"],
                    p["occ_v"] - p["occ_b"], p["occ_v"] + p["occ_b"], on=p["rect_on"])
    if win is not None:
        uu, vv = cv.coords(win)
        dr = np.maximum(np.abs(uu - P["occ_u"]) - P["occ_a"], np.abs(vv - P["occ_v"]) - P["occ_b"])
        a = cv.cover(dr)
        a *= P["rect_on"]
        cv.paint(win, a, P["occ_col"])
        if cv.skin_mask is not None:
            cv.skin_mask[:, win[0], win[1]] *= 1.0 - a
    win = cv.window(p["occ_u"] - p["occ_a"] - 0.02, p["occ_u"] + p["occ_a"] + 0.02,
                    p["occ_v"] - p["occ_b"] * 1.3 - 0.02, p["occ_v"] + p["occ_b"] * 1.3 + 0.02, on=p["hand_on"])
    if win is not None:
        uu, vv = cv.coords(win)
        dh = _ellipse(uu, vv, P["occ_u"], P["occ_v"], P["occ_a"], P["occ_b"] * 1.3)
        a = cv.cover(dh.copy())
        a *= P["hand_on"]
        cv.paint(win, a, P["hand_col"])
        if cv.skin_mask is not None:
            sm = cv.skin_mask[:, win[0], win[1]]
            np.maximum(sm, a, out=sm)
        np.abs(dh, out=dh)
        dh -= 0.012
        a = cv.cover(dh)
        a *= 0.6 * P["hand_on"]
        cv.paint(win, a, P["ink"])

    img = cv.img
    # Lighting: gain times a linear gradient over the image; the 0..255 scale of
    # the output is folded in here.
    g = cv.grid
    gain = P["gain"] * 255.0
    img *= (P["light_x"] * gain) * g[None, None, :] + (P["light_y"] * gain) * g[None, :, None] + gain

    # Blur: blend towards a separable [1 2 1]/4 blur (edges replicated):
    # img + blur * (blurred - img) = (1 - blur) * img + (blur / 16) * (16 * blurred).
    h = np.empty_like(img)
    np.add(img[:, :, :-2], img[:, :, 2:], out=h[:, :, 1:-1])
    h[:, :, 0] = img[:, :, 0] * 3.0 + img[:, :, 1]
    h[:, :, -1] = img[:, :, -1] * 3.0 + img[:, :, -2]
    h[:, :, 1:-1] += img[:, :, 1:-1] * 2.0
    b = np.empty_like(img)
    np.add(h[:, :-2], h[:, 2:], out=b[:, 1:-1])
    b[:, 0] = h[:, 0] * 3.0 + h[:, 1]
    b[:, -1] = h[:, -1] * 3.0 + h[:, -2]
    h *= 2.0
    b[:, 1:-1] += h[:, 1:-1]
    b *= P["blur"] * (1.0 / 16.0)
    img *= 1.0 - P["blur"]
    img += b
    del h, b

    # Sensor noise: triangular (sum of two uniforms), zero mean, unit variance before scaling.
    scale = P["noise"] * (255.0 * math.sqrt(6.0))
    nz = rng.random(img.shape, dtype=np.float32)
    nz += rng.random(img.shape, dtype=np.float32)
    nz *= scale
    img += nz
    img -= scale
    del nz

    # Explicit rounding rule: clip to [0, 255], round half up (floor(x + 0.5), done
    # as truncation of a value >= 0.5 by the uint8 cast).
    out = np.empty((cv.B, size, size, channels), dtype=np.uint8)
    if channels == 1:
        img += 0.5
        np.clip(img, 0.5, 255.5, out=img)
        out[..., 0] = img
    else:
        m = cv.skin_mask
        for k, (skin_t, bg_t) in enumerate(((P["skin_r"], P["bg_r"]), (1.0, P["bg_g"]), (P["skin_b"], P["bg_b"]))):
            pl = m * (skin_t - bg_t)
            pl += bg_t
            pl *= img
            pl += 0.5
            np.clip(pl, 0.5, 255.5, out=pl)
            out[..., k] = pl
    return out


# ----------------------------------------------------------------------------
# public API

def _workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def make_synthfer(n: int, *, size: int = 48, channels: int = 1, seed: int = 0, difficulty: float = 1.0,
                  class_freq: tuple[float, ...] | None = None, split: str = "train") -> FERData:
    """Draw ``n`` SynthFER faces.

    Class counts are the largest-remainder rounding of ``n * class_freq`` (default:
    proportional to RAF-DB's train counts), in a seeded random order. ``split``
    selects an independent stream for the same seed. The result is a pure function
    of the arguments, byte for byte, on any machine.
    """
    freq = _check_args(n, size, channels, seed, difficulty, class_freq, split)
    n, size, channels, seed, difficulty = int(n), int(size), int(channels), int(seed), float(difficulty)
    counts = _class_counts(n, freq)
    root = np.random.SeedSequence([seed, _split_key(split), _SALT])
    label_ss, scene_ss, noise_ss = root.spawn(3)
    labels = np.random.Generator(np.random.PCG64(label_ss)).permutation(
        np.repeat(np.arange(len(RAFDB_ORDER), dtype=np.int64), counts))
    scene = _sample_scene(np.random.Generator(np.random.PCG64(scene_ss)), labels, difficulty)

    chunk = max(1, _CHUNK_PIXELS // (size * size))
    starts = list(range(0, n, chunk))
    noise_seeds = noise_ss.spawn(len(starts))
    images = np.empty((n, size, size, channels), dtype=np.uint8)

    def work(i: int) -> None:
        sl = slice(starts[i], min(n, starts[i] + chunk))
        part = {k: v[sl] for k, v in scene.items()}
        images[sl] = _render(part, size, channels, np.random.Generator(np.random.PCG64(noise_seeds[i])))

    workers = min(_workers(), len(starts))
    if workers == 1:
        for i in range(len(starts)):
            work(i)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(work, range(len(starts))))
    return FERData(images=images, labels=labels, class_names=tuple(RAFDB_ORDER), name="synthfer", split=split)


def load_synthfer(split: str, *, n: int | None = None, **kw) -> FERData:
    """SynthFER with RAF-DB-like split sizes (train 12,271, test 3,068, val 3,068)."""
    if split not in _SPLITS:
        raise ValueError(f"load_synthfer: split must be one of {_SPLITS}, got {split!r}")
    if "split" in kw:
        raise ValueError("load_synthfer: pass the split positionally, not also as split=")
    return make_synthfer(DEFAULT_SIZES[split] if n is None else n, split=split, **kw)
