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
    label: str = ""           # the name tables, figures and the book show ("" for custom parts)

    @property
    def uses_unlabeled(self) -> bool:
        return self.threshold != "none" or self.negatives != "none"


RECIPES: dict[str, Recipe] = {
    "supervised": Recipe("none", label="supervised"),
    # Lee (2013): hard pseudo labels on the same (weak) view, confidence-gated.
    "pseudo_label": Recipe("fixed", student_view="weak", label="Pseudo-Label"),
    "fixmatch": Recipe("fixed", label="FixMatch"),
    "flexmatch": Recipe("flexmatch", label="FlexMatch"),
    "freematch": Recipe("freematch", label="FreeMatch"),
    "adacm": Recipe("adacm", label="Ada-CM"),
    "dta": Recipe("dta", label="DTA"),
    "dta_snl": Recipe("dta", "snl", label="DTA+SNL"),
}
CUSTOM = "custom"  # the parts named in the config


def display_name(name: str) -> str:
    """What the book calls algorithm ``name``: its recipe's label, else the name itself."""
    r = RECIPES.get(name)
    return r.label if r and r.label else name


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
                  student_view=base.student_view if student_view == "strong" else student_view, label=base.label)


def recipe_for(algo: Any) -> Recipe:
    """``recipe`` of a config's ``algo`` section (anything with ``name``, ``threshold``,
    ``negatives`` and ``student_view``)."""
    return recipe(algo.name, algo.threshold, algo.negatives, algo.student_view)
