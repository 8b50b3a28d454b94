"""Semi-supervised parts the trainer assembles: thresholds, negative selectors, losses."""
from ssfer.algo.losses import (
    log_one_minus_softmax,
    negative_loss,
    positive_loss,
    soft_cross_entropy,
    supervised_loss,
)
from ssfer.algo.negatives import (
    NEGATIVES,
    CCLSelector,
    NegativeSelector,
    NLNLSelector,
    NoNegatives,
    SNLSelector,
    UPSSelector,
    build_negatives,
    negatives_options,
)
from ssfer.algo.thresholds import (
    THRESHOLDS,
    AdaCMThreshold,
    DTAThreshold,
    FixedThreshold,
    FlexMatchThreshold,
    FreeMatchThreshold,
    StepStats,
    Threshold,
    build_threshold,
    dta_ramp,
    threshold_options,
)

__all__ = [
    "StepStats", "Threshold", "FixedThreshold", "FlexMatchThreshold", "FreeMatchThreshold",
    "AdaCMThreshold", "DTAThreshold", "THRESHOLDS", "build_threshold", "threshold_options",
    "dta_ramp",
    "NegativeSelector", "NoNegatives", "NLNLSelector", "UPSSelector", "CCLSelector",
    "SNLSelector", "NEGATIVES", "build_negatives", "negatives_options",
    "supervised_loss", "soft_cross_entropy", "positive_loss", "negative_loss",
    "log_one_minus_softmax",
]
