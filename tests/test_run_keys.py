"""A run's key covers its config and the code that trains it, nothing else: editing
the CLI, the notebook tooling, a docstring or a comment retrains no run."""
import pytest

from ssfer import codegraph, record
from ssfer.config import Config

CFG = Config.default()


def _key_after(monkeypatch, module: str, edit) -> str:
    """The default config's run key with ``module``'s source replaced by ``edit(source)``
    (the file itself is not touched)."""
    path = codegraph.module_files()[module]
    real = codegraph.read_source
    before = real(path)
    after = edit(before)
    assert after != before, "the edit changed nothing: the test would prove nothing"
    monkeypatch.setattr(codegraph, "read_source", lambda p: after if p == path else real(p))
    try:
        return record.run_key(CFG)
    finally:
        monkeypatch.setattr(codegraph, "read_source", real)


def _add_code(src: str) -> str:
    return src + "\n\ndef _added_by_a_test():\n    return 1\n"


@pytest.mark.parametrize("module", ["ssfer.cli", "ssfer.book.reproduce", "ssfer.book.recording", "ssfer.book.grid_tables", "ssfer.evaluate", "ssfer.bench"])
def test_editing_code_the_trainer_does_not_import_keeps_every_key(monkeypatch, module):
    assert _key_after(monkeypatch, module, _add_code) == record.run_key(CFG)


@pytest.mark.parametrize("edit", [
    lambda s: s.replace('"""Confidence thresholds that decide', '"""Thresholds on the confidence, deciding', 1),
    lambda s: s.replace('"""Base class: per-class confidence threshold', '"""The base class of every rule', 1),
    lambda s: s.replace("\nclass Threshold(", "\n# a comment, and a blank line\n\nclass Threshold(", 1),
], ids=["module docstring", "class docstring", "comment"])
def test_editing_a_docstring_or_comment_of_a_training_module_keeps_every_key(monkeypatch, edit):
    assert _key_after(monkeypatch, "ssfer.algo.thresholds", edit) == record.run_key(CFG)


@pytest.mark.parametrize("module, edit", [
    ("ssfer.algo.thresholds", lambda s: s.replace("FREEMATCH_CLIP = 0.95", "FREEMATCH_CLIP = 0.9", 1)),
    ("ssfer.algo.thresholds", _add_code),
    ("ssfer.views", lambda s: s.replace("MAX_SHEAR = 0.3", "MAX_SHEAR = 0.25", 1)),
    ("ssfer.data.synthfer", _add_code),  # imported only inside a function of ssfer.data.registry
])
def test_editing_training_code_changes_the_key(monkeypatch, module, edit):
    assert _key_after(monkeypatch, module, edit) != record.run_key(CFG)


def test_the_training_modules_come_from_the_trainers_imports():
    mods = set(record.training_modules())
    assert {"ssfer.train.loop", "ssfer.algo.thresholds", "ssfer.views", "ssfer.tone", "ssfer.model.backbone",
            "ssfer.data.synthfer", "ssfer.data.preprocess", "ssfer.config"} <= mods
    assert not mods & {"ssfer.cli", "ssfer.evaluate", "ssfer.bench", "ssfer.data.check", "ssfer.__main__"}
    assert not {m for m in mods if m == "ssfer.book" or m.startswith(("ssfer.book.", "ssfer.cli."))}


def test_the_record_names_the_code_its_key_covers():
    assert record.environment()["code_fingerprint"] == record.training_code_digest()
    assert record.run_key(CFG.with_overrides({"train.steps": 7})) != record.run_key(CFG)


def test_the_pretrained_weights_file_is_part_of_the_run_key(tmp_path):
    """model.pretrained_path keys the run by the file's bytes, not its name: a new
    pretraining written to the same path is another run; no path, no change."""
    import torch

    weights = tmp_path / "backbone.pt"
    torch.save({"x": torch.zeros(1)}, weights)
    base = Config.default()
    cfg = base.with_overrides({"model.pretrained_path": str(weights)})
    first = record.run_key(cfg)
    assert first != record.run_key(base)
    assert record.weights_fingerprint(base) is None
    torch.save({"x": torch.ones(1)}, weights)
    assert record.run_key(cfg) != first
    assert record.weights_fingerprint(cfg) == __import__("hashlib").sha256(weights.read_bytes()).hexdigest()
    weights.unlink()
    with pytest.raises(record.ConfigError, match="model.pretrained_path: no file at"):
        record.run_key(cfg)


def test_a_fine_tuned_run_records_the_hash_of_the_weights_it_started_from(tmp_path, tiny_overrides):
    import hashlib

    import torch

    from ssfer.model import model_for
    from ssfer.train import run

    cfg = Config.default().with_overrides({**tiny_overrides, "algo.name": "supervised"})
    weights = tmp_path / "backbone.pt"
    torch.save(model_for(cfg, 7).state_dict(), weights)
    rec = run(cfg.with_overrides({"model.pretrained_path": str(weights)}), cache_dir=tmp_path / "cache")
    assert rec.summary["pretrained"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert "body tensors matched" in rec.summary["pretrained"]["load"]
