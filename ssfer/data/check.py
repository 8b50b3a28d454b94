"""``ssfer data check NAME ROOT``: what is in a data set and what is wrong with it.

Walks the same scanners as the loaders, but collects every problem instead of
stopping at the first: rows that do not parse, labels out of range, missing,
unreadable or truncated images (errors); blank or flat images, byte-identical
duplicates, duplicates filed under different classes or shared between
splits (leakage), rows listed twice, splits stored with different contrast
(warnings). Exit status 0 when there are
only warnings, 1 with errors, 2 when the data set cannot be checked at all.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from . import decode
from .errors import DataError, Problems
from .registry import _format
from .registry import scan as scan_split

FLAT_STD = 2.0  # grey-level std below which an image carries no face (FER2013: 12 black + 1 flat)
# a split's median per-image std this many times another's, or shares of full-range
# images this far apart, is a contrast shift (a FER2013 copy whose train split had been
# blurred and squeezed showed median std 37.6 in train against 53.7 in test)
CONTRAST_RATIO = 1.25
CONTRAST_SHARE = 0.2


def _classify_failure(msg: str, kind: str) -> str:
    if kind == "pixels":
        return "malformed-row"
    if msg.startswith("missing"):
        return "missing-file"
    return "truncated-image" if "truncated" in msg.lower() else "unreadable-image"


def check_dataset(name: str, root, *, splits=None, workers: int | None = None,
                  flat_std: float = FLAT_STD, images: bool = True, **opts) -> dict:
    """Check every split (or ``splits``) of a data set; returns the JSON report.

    images=False reads the label files and lists the image files only (counts,
    rows, missing files) without opening a single image: quick, but no
    unreadable, blank or duplicate image is found then.

    {"dataset", "root", "options", "splits": {split: {"total", "per_class",
    "dropped"}}, "contrast": {split: {"median_std", "full_range_share"}} (with
    images=True), "summary": {...}, "problems": [{"kind", "path", "detail",
    "severity"}], "ok": no errors}
    """
    if str(name).strip().lower() == "synthfer":
        raise DataError("synthfer is generated from a seed, not read from disk: nothing to check")
    fmt = _format(name)
    fmt.check_options(opts)
    root = str(root)
    problems = Problems(strict=False)
    report: dict = {"dataset": fmt.name, "root": root, "options": opts, "splits": {}, "contrast": {}}
    if splits is None:
        try:
            splits = fmt.available_splits(root, **opts)
        except (DataError, OSError) as e:
            problems.error("layout", root, str(e))
            splits = ()
    # digest -> {source: (display, class, split)}; a source listed twice counts once
    by_digest: dict[str, dict[str, tuple[str, str, str]]] = defaultdict(dict)
    for split in splits:
        try:
            m = scan_split(fmt.name, root, split, problems, **opts)
        except DataError as e:  # the layout itself is wrong: nothing to count in this split
            problems.error("layout", root, str(e))
            continue
        per_class = {c: 0 for c in m.class_names}
        for lab in m.labels:
            per_class[m.class_names[lab]] += 1
        report["splits"][m.split] = {"total": len(m), "per_class": per_class, "dropped": dict(m.dropped)}
        seen: dict[str, int] = {}
        for i, (src, disp) in enumerate(zip(m.sources, m.display)):
            if m.kind == "files":
                if src in seen:
                    same = m.labels[seen[src]] == m.labels[i]
                    problems.warn("duplicate-row", disp, "listed again in the label file"
                                  + ("" if same else " with another class"))
                seen.setdefault(src, i)
        contrast: list[tuple[int, int, float]] = []
        for i, row in enumerate(decode.inspect_manifest(m, workers) if images else ()):
            digest, err, _w, _h, _mode, lo, hi, std = row
            disp, cls = m.display[i], m.class_names[m.labels[i]]
            if err is not None:
                problems.error(_classify_failure(err, m.kind), disp, err)
                continue
            if std < flat_std:
                blank = lo == hi
                problems.warn("blank-image" if blank else "flat-image", disp,
                              f"all pixels {lo}" if blank else f"pixel std {std:.2f} < {flat_std} "
                              f"(values {lo}..{hi})")
            key = m.sources[i] if m.kind == "files" else disp
            by_digest[digest][key] = (disp, cls, m.split)
            contrast.append((lo, hi, std))
        if contrast:
            report["contrast"][m.split] = contrast_stats(contrast)
    shift = contrast_shift(report["contrast"])
    if shift:
        problems.warn("contrast-shift", root, shift)
    groups = [sorted(g.values()) for g in by_digest.values() if len(g) > 1]
    groups.sort()
    cross = cross_split = 0
    for g in groups:
        others = ", ".join(d for d, _, _ in g[1:6]) + (f", ... ({len(g) - 6} more)" if len(g) > 6 else "")
        problems.warn("duplicate", g[0][0], f"byte-identical to {len(g) - 1} other(s): {others}")
        if len({c for _, c, _ in g}) > 1:
            cross += 1
            problems.warn("duplicate-cross-class", g[0][0],
                          "identical images filed as " + ", ".join(f"{d} ({c})" for d, c, _ in g))
        if len({s for _, _, s in g}) > 1:  # the same face in train and test: leakage
            cross_split += 1
            problems.warn("duplicate-cross-split", g[0][0],
                          "identical images in splits " + ", ".join(f"{d} ({s})" for d, _, s in g))
    kinds: dict[str, int] = defaultdict(int)
    for p in problems.items:
        kinds[p.kind] += 1
    report["summary"] = {
        "errors": len(problems.errors), "warnings": len(problems.warnings), "images_checked": images,
        "blank_images": kinds.get("blank-image", 0), "flat_images": kinds.get("flat-image", 0),
        "duplicate_groups": len(groups), "duplicate_files": sum(len(g) for g in groups),
        "cross_class_duplicate_groups": cross, "cross_split_duplicate_groups": cross_split,
        "by_kind": dict(sorted(kinds.items())),
    }
    report["problems"] = [p.as_dict() for p in problems.items]
    report["ok"] = not problems.errors
    return report


def contrast_stats(rows: list[tuple[int, int, float]]) -> dict:
    """Median per-image pixel std and the share of images spanning (almost) 0..255."""
    lo, hi, std = (np.array(c, dtype=np.float64) for c in zip(*rows))
    return {"median_std": round(float(np.median(std)), 2),
            "full_range_share": round(float(np.mean((lo <= 2) & (hi >= 253))), 4)}


def contrast_shift(stats: dict[str, dict], ratio: float = CONTRAST_RATIO, share: float = CONTRAST_SHARE) -> str:
    """A sentence when the splits' contrast differs (one split stored stretched,
    say), else ''. A model trained on one and tested on the other sees a shift
    no augmentation in this library undoes; ``data.tone`` maps every split
    through one per-image rule, which may or may not close it."""
    if len(stats) < 2:
        return ""
    stds = {s: v["median_std"] for s, v in stats.items()}
    shares = {s: v["full_range_share"] for s, v in stats.items()}
    lo_s, hi_s = min(stds, key=stds.get), max(stds, key=stds.get)
    if stds[hi_s] <= ratio * max(stds[lo_s], 1e-9) and max(shares.values()) - min(shares.values()) <= share:
        return ""
    return ("the splits differ in contrast: median per-image pixel std "
            + ", ".join(f"{s} {v:.1f}" for s, v in stds.items())
            + "; images spanning 0..255: " + ", ".join(f"{s} {100 * v:.0f}%" for s, v in shares.items())
            + " (data.tone maps every split through one per-image rule)")


def format_report(report: dict, max_problems: int = 20) -> str:
    """The human-readable form: class counts per split, problem summary, examples."""
    out = [f"{report['dataset']} at {report['root']}"
           + (f" (options {report['options']})" if report["options"] else "")]
    splits = report["splits"]
    if splits:
        names = list(splits)
        classes = list(dict.fromkeys(c for s in splits.values() for c in s["per_class"]))
        reasons = list(dict.fromkeys(r for s in splits.values() for r in s["dropped"]))
        width = max([len(c) for c in classes] + [len("dropped: " + r) for r in reasons] + [8]) + 2
        out.append("".join([f"{'class':<{width}}"] + [f"{s:>10}" for s in names]))
        for c in classes:
            out.append(f"{c:<{width}}" + "".join(f"{splits[s]['per_class'].get(c, 0):>10}" for s in names))
        out.append(f"{'total':<{width}}" + "".join(f"{splits[s]['total']:>10}" for s in names))
        for r in reasons:
            out.append(f"{'dropped: ' + r:<{width}}" + "".join(f"{splits[s]['dropped'].get(r, 0):>10}"
                                                               for s in names))
    sm = report["summary"]
    out.append(f"problems: {sm['errors']} error(s), {sm['warnings']} warning(s)")
    first: dict[str, dict] = {}
    for p in report["problems"]:
        first.setdefault(p["kind"], p)
    for kind, n in sm["by_kind"].items():
        p = first[kind]
        out.append(f"  {p['severity']:<8}{kind:<24}{n:>6}   e.g. {p['path']}: {p['detail'][:100]}")
    if sm["duplicate_groups"]:
        out.append(f"  duplicates: {sm['duplicate_files']} files in {sm['duplicate_groups']} groups of "
                   f"byte-identical images; {sm['cross_class_duplicate_groups']} groups under more than one "
                   f"class, {sm['cross_split_duplicate_groups']} in more than one split")
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    if errors and max_problems:
        out.append(f"errors (first {min(len(errors), max_problems)}):")
        out += [f"  {p['kind']}: {p['path']}: {p['detail']}" for p in errors[:max_problems]]
    out.append("result: " + ("OK" + (" (warnings only)" if sm["warnings"] else "") if report["ok"]
                             else "ERRORS"))
    return "\n".join(out)
