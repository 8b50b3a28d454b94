"""Backbone (timm body + local attention + feature-map dropout) and local weight loading."""
from .attention import ATTENTIONS, FEATURE_DROPOUTS
from .backbone import STEMS, FERNet, build_model, model_for
from .pretrained import LoadReport, load_pretrained, read_state_dict

__all__ = ["ATTENTIONS", "FEATURE_DROPOUTS", "FERNet", "LoadReport", "STEMS", "build_model", "load_pretrained", "model_for",
           "read_state_dict"]
