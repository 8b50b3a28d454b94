"""A swappable part's config options are its constructor's parameters.

``THRESHOLDS`` and ``NEGATIVES`` map a name to the class that implements it;
the options a config may pass to it, and their defaults, are read from the
class's signature, so adding a part is its class and its registry entry.
"""
from __future__ import annotations

import inspect
from collections.abc import Collection, Mapping
from typing import Any


def part_options(registry: Mapping[str, type], kind: str, what: str, fixed: Collection[str] = ()) -> dict[str, Any]:
    """Options of the part ``kind`` and their defaults; ``fixed`` parameters are the
    trainer's to pass, not the config's. ``what`` names the kind of part in errors."""
    if kind not in registry:
        raise ValueError(f"unknown {what} {kind!r}; known: {sorted(registry)}")
    params = inspect.signature(registry[kind]).parameters
    return {n: p.default for n, p in params.items() if n not in fixed}


def check_part_options(registry: Mapping[str, type], kind: str, what: str, given: Collection[str],
                       fixed: Collection[str] = ()) -> None:
    """ValueError naming any of the ``given`` options the part ``kind`` does not take."""
    allowed = part_options(registry, kind, what, fixed)
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValueError(f"{what} {kind!r}: unknown option(s) {unknown}; allowed: {sorted(allowed)}")
