"""ssfer: semi-supervised facial expression recognition with Dynamic Threshold
Adjustment (DTA) and Selective Negative Learning (SNL), after Cai et al.,
arXiv:2601.05556 (2026)."""

__version__ = "0.1.0"
