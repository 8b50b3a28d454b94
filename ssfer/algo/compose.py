"""Algorithms as compositions of a threshold rule and a negative-label selector.

No algorithm has its own training code: each name is a recipe of parts, and
``custom`` takes any threshold x selector pair from the configuration.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ssfer.errors import ConfigError


@dataclass(frozen=True)
class Recipe:
    threshold: str            # a kind of ssfer.algo.thresholds.THRESHOLDS, or "none"
    negatives: str = "none"   # a kind of ssfer.algo.negatives.NEGATIVES
    student_view: str = "strong"

    @property
    def uses_unlabeled(self) -> bool:
        return self.threshold != "none" or self.negatives != "none"


RECIPES: dict[str, Recipe] = {
    "supervised": Recipe("none"),
    # Lee (2013): hard pseudo labels on the same (weak) view, confidence-gated.
    "pseudo_label": Recipe("fixed", student_view="weak"),
    "fixmatch": Recipe("fixed"),
    "flexmatch": Recipe("flexmatch"),
    "freematch": Recipe("freematch"),
    "adacm": Recipe("adacm"),
    "dta": Recipe("dta"),
    "dta_snl": Recipe("dta", "snl"),
}
CUSTOM = "custom"  # the parts named in the config


def algorithms() -> tuple[str, ...]:
    """Every algorithm name a config may give: the recipes, then ``custom``."""
    return (*RECIPES, CUSTOM)


def recipe(name: str, threshold: str | None = None, negatives: str | None = None,
           student_view: str = "strong") -> Recipe:
    """The parts of algorithm ``name``. A ``threshold`` or ``negatives`` given
    replaces the recipe's, as does a ``student_view`` other than "strong";
    ``custom`` takes all three as given (a threshold rule is required)."""
    if name == CUSTOM:
        if threshold is None:
            raise ConfigError(f"algo.threshold: required when algo.name is {CUSTOM!r}")
        return Recipe(threshold, negatives or "none", student_view)
    if name not in RECIPES:
        raise ValueError(f"unknown algorithm {name!r}; known: {list(algorithms())}")
    base = RECIPES[name]
    return Recipe(threshold=threshold or base.threshold, negatives=negatives or base.negatives,
                  student_view=base.student_view if student_view == "strong" else student_view)


def recipe_for(algo: Any) -> Recipe:
    """``recipe`` of a config's ``algo`` section (anything with ``name``, ``threshold``,
    ``negatives`` and ``student_view``)."""
    return recipe(algo.name, algo.threshold, algo.negatives, algo.student_view)
