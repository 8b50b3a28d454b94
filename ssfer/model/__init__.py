"""Backbone (timm body + local attention + feature-map dropout) and local weight loading."""
from .attention import ATTENTIONS, FEATURE_DROPOUTS
from .backbone import FERNet, build_model
from .pretrained import LoadReport, load_pretrained, read_state_dict

__all__ = ["ATTENTIONS", "FEATURE_DROPOUTS", "FERNet", "LoadReport", "build_model", "load_pretrained",
           "read_state_dict"]
