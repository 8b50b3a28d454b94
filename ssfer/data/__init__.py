"""Facial-expression data sets: loaders, decode cache, data check, SSL splits.

    from ssfer.data import load_dataset
    train = load_dataset("fer2013", "/data/fer2013", "train", size=48)

Every loader returns ``FERData`` (uint8 NHWC images, labels indexing canonical
class names); decoded arrays are cached on disk and memory-mapped.
"""
from .dataset import FERData
from .errors import DataError
from .mapping import to_canonical
from .registry import DATASETS, FORMATS, load_dataset

__all__ = ["DATASETS", "FORMATS", "DataError", "FERData", "load_dataset", "to_canonical"]
