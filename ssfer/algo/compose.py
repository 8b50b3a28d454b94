"""Algorithms as compositions of a threshold rule and a negative-label selector.

No algorithm has its own training code: each name is a recipe of parts, and
``custom`` takes any threshold x selector pair from the configuration.
"""
from __future__ import annotations

from dataclasses import dataclass

from ssfer.config import AlgoConfig, ConfigError


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


def recipe_for(algo: AlgoConfig) -> Recipe:
    """The parts an algorithm config asks for; explicit overrides win."""
    if algo.name == "custom":
        if algo.threshold is None:
            raise ConfigError("algo.threshold: required when algo.name is 'custom'")
        base = Recipe(algo.threshold, algo.negatives or "none")
    else:
        base = RECIPES[algo.name]
    return Recipe(
        threshold=algo.threshold or base.threshold,
        negatives=algo.negatives or base.negatives,
        student_view=algo.student_view if algo.name == "custom" or algo.student_view != "strong"
        else base.student_view,
    )
