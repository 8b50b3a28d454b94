import os

import pytest

# Tests share two cores with each other's subprocesses: keep torch from oversubscribing.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def tiny_overrides():
    """A configuration that trains in about a second on a CPU."""
    return {
        "data.n_train": 400, "data.n_test": 70, "data.size": 32,
        "model.name": "test_resnet", "split.n_per_class": 4,
        "train.steps": 6, "train.batch_size": 8, "train.mu": 2, "train.log_every": 2,
        "train.eval_every": 3, "train.progress": False, "train.device": "cpu",
    }
