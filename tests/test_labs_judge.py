"""ssfer.book.teaching.answers and .judge: what a test cell hands the grader, read back
as plain data only, and the verdicts the grader draws from it, outside the kernel."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from ssfer.book.teaching import answers, judge


def _roundtrip(v):
    return answers.parse(json.dumps({"cell": "c", "values": [answers.encode(v)]}) + "\n")["c"][0][0]


def test_values_travel_as_plain_data():
    got = _roundtrip({"t": torch.tensor([[1.0, 2.0]]), "a": np.arange(3, dtype=np.int64), "f": float("nan"),
                      "s": ("x", 1, True, None), "n": np.float64(0.5), "b": torch.tensor(True)})
    assert got["t"].dtype == np.float32 and got["t"].tolist() == [[1.0, 2.0]]
    assert got["a"].tolist() == [0, 1, 2] and math.isnan(got["f"]) and got["s"] == ["x", 1, True, None]
    assert got["n"] == 0.5 and got["b"].dtype == np.bool_
    with pytest.raises(answers.AnswerError, match="cannot be handed"):
        answers.encode(object())


@pytest.mark.parametrize("value", [
    {"array": "|O", "shape": [1], "b64": ""},                    # objects: never
    {"array": "<f4", "shape": [2], "b64": "AAAAAA=="},           # bytes that do not fill the shape
    {"array": "<f4", "shape": [-1], "b64": ""},
    {"pickle": "gASVAAAAAAAAAAB9lC4="},
    {"dict": [[1, 2]]},
], ids=["object dtype", "short bytes", "negative shape", "pickle", "bad dict"])
def test_anything_but_plain_data_is_refused(value):
    with pytest.raises(answers.AnswerError):
        answers.parse(json.dumps({"cell": "c", "values": [value]}))


def test_a_cell_hands_nothing_outside_grading(tmp_path, monkeypatch):
    monkeypatch.delenv(answers.ENV, raising=False)
    answers.cell("x").add(torch.ones(2))            # no file, no error
    monkeypatch.setenv(answers.ENV, str(tmp_path / "a.jsonl"))
    answers.cell("x").add(torch.ones(2), 3)
    answers.cell("x").add("done")
    got = judge.read_answers(tmp_path / "a.jsonl")
    assert len(got["x"]) == 2 and got["x"][1] == ["done"]


def test_the_answers_file_is_read_only_as_a_plain_small_file(tmp_path, monkeypatch):
    assert judge.read_answers(tmp_path / "none.jsonl") == {}
    os.symlink("/etc/hostname", tmp_path / "link.jsonl")
    with pytest.raises(answers.AnswerError, match="cannot be opened"):
        judge.read_answers(tmp_path / "link.jsonl")
    monkeypatch.setattr(judge, "MAX_BYTES", 10)
    (tmp_path / "big.jsonl").write_text("x" * 11)
    with pytest.raises(answers.AnswerError, match="larger than"):
        judge.read_answers(tmp_path / "big.jsonl")


def test_a_cell_passes_only_with_all_the_solutions_values():
    ref = [[np.array([0.5, 0.25], dtype=np.float32)], [1.0, "a"]]
    same = [[np.array([0.5, 0.25 + 1e-7], dtype=np.float32)], [1.0 + 1e-9, "a"]]
    assert judge.verdict(same, ref).passed
    assert "stopped early" in judge.verdict(same[:1], ref).why
    assert "differ" in judge.verdict([[np.array([0.5, 0.3], dtype=np.float32)], [1.0, "a"]], ref).why
    assert "float64" in judge.verdict([[np.array([0.5, 0.25])], [1.0, "a"]], ref).why   # the dtype counts
    assert not judge.verdict([*same, [1.0]], ref).passed                                  # nor more values
    assert not judge.verdict([same[0], [1.0, "b"]], ref).passed
