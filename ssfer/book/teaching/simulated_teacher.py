"""A stream of teacher outputs for the labs, with no network behind it.

Real training couples everything: the threshold decides which pseudo labels the
student learns from, which changes the teacher, which changes the confidences
the threshold sees. The labs study a rule alone, so they replace the network by
teacher logits with the properties that matter: confidence grows with training,
faster for frequent classes (the model sees more of them), and every expression
has a look-alike it is confused with. Class frequencies follow RAF-DB's
training set (``ssfer.classes``), the classes in ``RAFDB_ORDER``.
"""
from __future__ import annotations

import torch

from ssfer.classes import RAFDB_LOOKALIKE, RAFDB_ORDER, RAFDB_TRAIN_COUNTS

C = len(RAFDB_ORDER)
FREQ = torch.tensor(RAFDB_TRAIN_COUNTS, dtype=torch.float32)
FREQ = FREQ / FREQ.sum()                 # RAF-DB's class shares: happiness 39 %, fear 2 %
EASE = (FREQ / FREQ.max()).sqrt()        # a class seen often is learned sooner
NEIGHBOUR = torch.tensor(RAFDB_LOOKALIKE)   # each class's look-alike, as SynthFER draws them


def simulate_logits(labels: torch.Tensor, progress: float, gen: torch.Generator,
                    noise: float = 1.2) -> torch.Tensor:
    """Teacher logits of a model ``progress`` (0..1) of the way through training.

    The true class leads by a margin that grows with progress, faster for
    frequent classes; its look-alike gets half of that lead; the rest is
    Gaussian noise of standard deviation ``noise`` (larger: a harder stream)."""
    margin = 5.0 * (1 - torch.exp(-4.0 * progress * EASE))
    z = noise * torch.randn(len(labels), C, generator=gen)
    rows = torch.arange(len(labels))
    z[rows, labels] += margin[labels]
    z[rows, NEIGHBOUR[labels]] += 0.5 * margin[labels]
    return z


def draw_labels(n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` true classes drawn with RAF-DB's class frequencies."""
    return torch.multinomial(FREQ, n, replacement=True, generator=gen)
