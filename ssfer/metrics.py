"""Evaluation metrics on host arrays (scikit-learn where it has the metric)."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al., 2017)."""
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def classification_metrics(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """Accuracy, mean class accuracy, macro-F1, ECE and the confusion matrix."""
    pred = probs.argmax(1)
    classes = list(range(num_classes))
    present = np.unique(labels)
    return {
        "accuracy": float((pred == labels).mean()),
        # mean over the classes present in the evaluated split
        "mean_class_accuracy": float(balanced_accuracy_score(labels, pred)) if len(present) > 1
        else float((pred == labels).mean()),
        "macro_f1": float(f1_score(labels, pred, labels=present, average="macro", zero_division=0)),
        "ece": expected_calibration_error(probs, labels),
        "confusion": confusion_matrix(labels, pred, labels=classes).tolist(),
    }
