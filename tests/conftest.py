import os
import signal

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


@pytest.fixture
def two_step_overrides():
    """The smallest run that still writes every record file: two steps, no evaluation
    during training, on the synthetic faces' real network (so grid and benchmark
    code sees a run shaped like a recorded one)."""
    return {
        "data.n_train": 300, "data.n_test": 40, "data.size": 16, "split.n_per_class": 2, "train.steps": 2,
        "train.batch_size": 4, "train.mu": 2, "train.eval_every": 0, "train.log_every": 1, "train.progress": False,
    }


@pytest.fixture
def ctrl_c_raises():
    """This process's Ctrl-C raises KeyboardInterrupt for the test, as at a terminal.
    A shell starts background jobs (`make test &`, nohup) with SIGINT ignored, and
    Python then installs no handler; a test that sends itself SIGINT would wait in vain."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)
