import json
import math
from types import SimpleNamespace

import pytest
import torch

from ssfer.algo.compose import RECIPES
from ssfer.algo.negatives import NEGATIVES
from ssfer.algo.thresholds import THRESHOLDS
from ssfer.cli import main as cli_main
from ssfer.config import Config
from ssfer.errors import CheckpointError
from ssfer.record import RunRecord
from ssfer.train import run, run_dir_for
from ssfer.train.loop import Trainer

ALGOS = list(RECIPES)  # every named algorithm: a new recipe is tested here at once


def cfg_of(tiny, **more):
    return Config.default().with_overrides({**tiny, **more})


@pytest.mark.slow  # 60 training steps
def test_loss_falls_on_a_tiny_run(tiny_overrides):
    cfg = cfg_of(tiny_overrides, **{"algo.name": "supervised", "train.steps": 60, "train.log_every": 15,
                                    "train.batch_size": 16, "split.n_per_class": 8, "model.feature_dropout": "none"})
    rec = Trainer(cfg).fit()
    losses = [h["loss"] for h in rec.history]
    assert losses[-1] < 0.8 * losses[0], losses  # chance level is ln 7 = 1.95


def test_fixmatch_masks_exactly_the_confident_samples(tiny_overrides, monkeypatch):
    cfg = cfg_of(tiny_overrides, **{"algo.name": "fixmatch", "algo.threshold_args": {"tau": 0.3}})
    tr = Trainer(cfg)
    seen = {}
    orig = tr.negatives.select

    def spy(t_logits, accepted, generator=None):
        seen["q"] = t_logits.softmax(1).max(1).values
        seen["accepted"] = accepted
        return orig(t_logits, accepted, generator=generator)

    monkeypatch.setattr(tr.negatives, "select", spy)
    for _ in range(3):
        tr.train_step()
        assert torch.equal(seen["accepted"], seen["q"] >= 0.3)


def test_cache_hit_returns_the_same_record(tiny_overrides, tmp_path, monkeypatch):
    cfg = cfg_of(tiny_overrides, **{"algo.name": "fixmatch"})
    first = run(cfg, cache_dir=tmp_path)
    assert (first.run_dir / "summary.json").exists()

    def boom(*a, **k):
        raise AssertionError("a cached run must not train again")

    monkeypatch.setattr(Trainer, "fit", boom)
    second = run(cfg, cache_dir=tmp_path)
    assert second.summary == first.summary and second.history == first.history
    assert second.config == cfg


def test_resume_after_interruption_matches_uninterrupted(tiny_overrides, tmp_path):
    cfg = cfg_of(tiny_overrides, **{"algo.name": "dta_snl", "train.steps": 8, "train.ckpt_every": 2,
                                    "train.log_every": 2, "train.eval_every": 4})
    full = Trainer(cfg, tmp_path / "a").fit()
    rd = tmp_path / "b"
    assert Trainer(cfg, rd).fit(stop_after=5) is None      # interrupted after step 5
    assert (rd / "checkpoint.pt").exists()
    resumed = Trainer(cfg, rd).fit()                         # same command again
    assert resumed.summary["resumed"] is True
    assert resumed.history_without_timing() == full.history_without_timing()
    for k in ("accuracy", "macro_f1", "ece", "confusion"):
        assert resumed.summary[k] == full.summary[k]
    assert not (rd / "checkpoint.pt").exists()


def test_checkpoint_of_another_config_is_refused(tiny_overrides, tmp_path):
    cfg = cfg_of(tiny_overrides, **{"train.ckpt_every": 2})
    Trainer(cfg, tmp_path).fit(stop_after=3)
    other = cfg.with_overrides({"train.lr": 0.01})
    with pytest.raises(CheckpointError, match="checkpoint.pt: the checkpoint belongs to a different config"):
        Trainer(other, tmp_path).fit()


@pytest.mark.parametrize("algo", ALGOS)
def test_every_algorithm_trains_through_the_cli(algo, tiny_overrides, tmp_path, capsys):
    sets = [f"{k}={json.dumps(v)}" for k, v in tiny_overrides.items()] + [f"algo.name={algo}"]
    argv = ["train", "--cache-dir", str(tmp_path)]
    for s in sets:
        argv += ["--set", s]
    assert cli_main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    rec = RunRecord.load(out["run_dir"])
    assert rec.summary["algorithm"] == algo
    for k in ("accuracy", "mean_class_accuracy", "macro_f1", "ece", "confusion"):
        assert k in rec.summary
    assert len(rec.summary["confusion"]) == 7
    rd = rec.run_dir
    for f in ("config.yaml", "metrics.jsonl", "summary.json", "environment.json", "split/split.json", "model.pt"):
        assert (rd / f).exists(), f
    last = rec.history[-1]
    if algo != "supervised":
        for k in ("mask_rate", "pl_precision_per_class", "pl_recall_per_class", "neg_rate", "neg_size", "thresholds"):
            assert k in last, k
        assert len(last["thresholds"]) == 7
        assert all(0 <= t <= 1 for t in last["thresholds"])
        assert 0 <= last["mask_rate"] <= 1


def test_every_recipe_names_registered_parts_and_the_name_tables_show():
    for name, r in RECIPES.items():
        assert r.threshold in ("none", *THRESHOLDS) and r.negatives in NEGATIVES, name
        assert r.label and r.student_view in ("weak", "strong"), f"{name}: give its Recipe a label"


def test_cli_rejects_bad_config_before_training(tmp_path, capsys):
    assert cli_main(["train", "--cache-dir", str(tmp_path), "--set", "train.lr=-1"]) == 2
    assert "train.lr" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_snl_diagnostics_count_complementary_labels(tiny_overrides):
    # a permissive selector on a tiny run: negatives must appear and be measured
    cfg = cfg_of(tiny_overrides, **{"algo.name": "custom", "algo.threshold": "fixed",
                                    "algo.negatives": "ccl", "train.steps": 4, "train.log_every": 4})
    rec = Trainer(cfg).fit()
    h = rec.history[-1]
    assert h["neg_rate"] > 0 and h["neg_size"] == math.floor(0.7 * 7)
    assert 0 <= h["neg_precision"] <= 1


def test_evaluation_follows_eval_every_even_off_the_log_cadence(tiny_overrides):
    cfg = cfg_of(tiny_overrides, **{"algo.name": "supervised", "train.log_every": 2, "train.eval_every": 3})
    rec = Trainer(cfg).fit()
    evals = [h["step"] for h in rec.history if "test_accuracy" in h]
    assert evals == [3, 6] and [h["step"] for h in rec.history] == [2, 3, 4, 6]
    assert all("loss" in h for h in rec.history)


def test_diagnostics_update_needs_no_host_sync():
    # meta tensors hold no data: any read-back to the host (bincount's max, .item()) fails
    from ssfer.diagnostics import LabelDiagnostics

    d = LabelDiagnostics(7).to("meta")
    y = torch.zeros(5, dtype=torch.long, device="meta")
    d.update(y, torch.ones(5, device="meta"), y, torch.ones(5, 7, device="meta"))


@pytest.mark.slow  # trains several steps or epochs, or grades notebooks
def test_a_run_another_process_is_training_is_waited_for_and_loaded(tiny_overrides, tmp_path):
    """Two notebooks executed side by side that need one run train it once."""
    import threading

    from ssfer.train import run_lock

    cfg = cfg_of(tiny_overrides, **{"algo.name": "supervised"})
    rd = run_dir_for(cfg, tmp_path)
    got = []
    with run_lock(rd):  # stands for the other notebook, which is training this run
        waiter = threading.Thread(target=lambda: got.append(run(cfg, cache_dir=tmp_path)))
        waiter.start()
        waiter.join(timeout=3)
        assert waiter.is_alive() and not got  # blocked on the lock, not training its own copy
        first = Trainer(cfg, rd).fit()
        written = (rd / "summary.json").stat().st_mtime_ns
    waiter.join(timeout=60)
    assert got and got[0].summary == first.summary
    assert (rd / "summary.json").stat().st_mtime_ns == written  # loaded, not trained again


def test_tone_rule_reaches_every_split_the_trainer_and_evaluation_read(tiny_overrides):
    import numpy as np

    from ssfer.data.preprocess import apply_tone
    from ssfer.train.data import load_split_data

    plain = cfg_of(tiny_overrides)
    for tone in ("autocontrast", "equalize"):
        toned = cfg_of(tiny_overrides, **{"data.tone": tone})
        for split in ("train", "test"):
            a, b = load_split_data(plain, split).images, load_split_data(toned, split).images
            assert np.array_equal(b, apply_tone(np.asarray(a), tone)) and not np.array_equal(a, b)
            span = a.max(axis=(1, 2, 3)) > a.min(axis=(1, 2, 3))
            assert (b.max(axis=(1, 2, 3))[span] >= 254).all()  # both rules reach white (PIL truncates)
            assert (a.max(axis=(1, 2, 3)) < 254).any()  # SynthFER alone does not: the test can fail
        assert plain.hash() != toned.hash()
    with pytest.raises(Exception, match="tone"):
        cfg_of(tiny_overrides, **{"data.tone": "gamma"})


def test_environment_is_read_when_the_run_starts_not_when_it_ends(tiny_overrides, tmp_path, monkeypatch):
    """A commit or an edit made while a run trains must not be recorded as the code it ran."""
    import ssfer.train.loop as loop

    calls = []

    def fake_environment():
        calls.append(len(tr.history))  # how far training had got when it was read
        return {"git_commit": f"read after {calls[-1]} logged rows"}

    tr = Trainer(cfg_of(tiny_overrides, **{"algo.name": "supervised"}), tmp_path / "run")
    monkeypatch.setattr(loop, "environment", fake_environment)
    rec = tr.fit()
    assert calls == [0] and rec.environment == {"git_commit": "read after 0 logged rows"}
    assert RunRecord.load(tmp_path / "run").environment == rec.environment


@pytest.mark.parametrize("how", [{"data.val_split": "val"}, {"split.val_per_class": 2}])
def test_validation_metrics_come_from_the_named_split_or_the_carved_train_images(tiny_overrides, how):
    cfg = cfg_of(tiny_overrides, **{"algo.name": "supervised", **how})
    tr = Trainer(cfg)
    n_val = len(tr.data.val_y)
    if "data.val_split" in how:
        assert tr.data.val is None and n_val == cfg.data.n_test  # SynthFER's val split, test-sized
    else:
        assert n_val == 2 * tr.data.num_classes and torch.equal(tr.data.val_y, tr.data.train_y[tr.data.val])
    rec = tr.fit()
    assert 0 <= rec.summary["val"]["accuracy"] <= 1
    assert all("val_accuracy" in h for h in rec.history if "test_accuracy" in h)


def test_eval_flip_averages_each_image_and_its_mirror(tiny_overrides):
    tr = Trainer(cfg_of(tiny_overrides, **{"algo.name": "supervised", "train.eval_flip": True}))
    x = tr.data.test_x[:5]
    both = tr.predict(x)
    tr.cfg = cfg_of(tiny_overrides, **{"algo.name": "supervised"})
    plain, mirrored = tr.predict(x), tr.predict(x.flip(3))
    torch.testing.assert_close(both, (plain + mirrored) / 2)
    assert not torch.allclose(plain, mirrored)  # the mirror is a different input


def test_ups_kappa_neg_filters_negatives_by_the_teachers_mc_dropout_spread(tiny_overrides):
    """kappa_neg must act: the trainer runs MC-dropout passes of the teacher and the
    selector keeps only classes whose spread is below kappa_neg."""
    base = {"algo.name": "custom", "algo.threshold": "fixed", "algo.negatives": "ups",
            "model.feature_dropout": "channel", "model.drop_prob": 0.5, "train.steps": 2, "train.log_every": 2}
    # τ_neg 0.9: every non-argmax class of a near-uniform teacher passes the probability rule
    loose = {"T": 2.0, "tau_neg": 0.9}
    plain = Trainer(cfg_of(tiny_overrides, **base, **{"algo.negatives_args": loose})).fit().history[-1]
    strict = Trainer(cfg_of(tiny_overrides, **base,
                            **{"algo.negatives_args": {**loose, "kappa_neg": 1e-9, "mc_passes": 3}}))
    seen = {}
    orig = strict.negatives.select

    def spy(t_logits, accepted, generator=None, spread=None):
        seen["spread"] = spread
        return orig(t_logits, accepted, generator=generator, spread=spread)

    strict.negatives.select = spy
    h = strict.fit().history[-1]
    assert plain["neg_rate"] == 1.0 and plain["neg_size"] == 6
    assert h["neg_rate"] == 0.0  # no class is that certain over the dropout passes
    assert seen["spread"].shape == (strict.batch_u, 7) and (seen["spread"] > 1e-9).all()
    with pytest.raises(Exception, match="kappa_neg.*feature_dropout"):
        cfg_of(tiny_overrides, **{**base, "model.feature_dropout": "none", "algo.negatives_args": {"kappa_neg": 0.005}})


def test_cli_reads_scientific_notation(tiny_overrides, tmp_path, capsys):
    argv = ["train", "--cache-dir", str(tmp_path), "--set", "train.lr=3e-3", "--set", "algo.name=supervised"]
    for k, v in tiny_overrides.items():
        argv += ["--set", f"{k}={json.dumps(v)}"]
    assert cli_main(argv) == 0
    rec = RunRecord.load(json.loads(capsys.readouterr().out)["run_dir"])
    assert rec.config.train.lr == 0.003


def test_train_seconds_of_a_resumed_run_add_up_over_every_process(tiny_overrides, tmp_path, monkeypatch):
    """Each training step costs one second of a fake clock: the uninterrupted run takes 8 s,
    and so must a run interrupted after 5 steps and resumed from its step-4 checkpoint."""
    import ssfer.train.loop as loop

    clock = [0.0]
    real_step = Trainer.train_step

    def step(self):
        clock[0] += 1.0
        return real_step(self)

    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(Trainer, "train_step", step)
    cfg = cfg_of(tiny_overrides, **{"algo.name": "supervised", "train.steps": 8, "train.ckpt_every": 2})
    assert Trainer(cfg, tmp_path / "a").fit().summary["train_seconds"] == 8.0
    assert Trainer(cfg, tmp_path / "b").fit(stop_after=5) is None   # steps 1-5: the step-4 checkpoint holds 4 s
    resumed = Trainer(cfg, tmp_path / "b").fit()                      # steps 5-8 again
    assert resumed.summary["resumed"] is True and resumed.summary["train_seconds"] == 8.0


# ------------------------------------------------- where pseudo labels come from

def _spy_forward(tr, calls):
    inner = tr.forward

    def forward(x):
        out = inner(x)
        calls.append((x.shape[0], out))
        return out

    tr.forward = forward


@pytest.mark.parametrize("source", ["teacher", "student"])
def test_pseudo_labels_come_from_the_network_the_config_names(tiny_overrides, source):
    """One step computed again by hand from what the networks returned: with
    ``student`` one student pass over [labeled; weak; strong] and no teacher
    call; with ``teacher`` (the default) the EMA teacher's weak-view logits."""
    cfg = cfg_of(tiny_overrides, **{"algo.name": "fixmatch", "algo.threshold_args": {"tau": 0.3},
                                    "algo.pseudo_labels": source})
    tr = Trainer(cfg)
    calls, teacher_calls, labels = [], [], []
    _spy_forward(tr, calls)
    tr.ema.module.register_forward_hook(lambda m, args, out: teacher_calls.append(out.float()))
    pick = tr._labeled_batch
    tr._labeled_batch = lambda: labels.append(pick()) or labels[-1]
    tr.train_step()

    bl, nu = cfg.train.batch_size, cfg.train.batch_size * cfg.train.mu
    assert len(calls) == 1
    n, out = calls[0]
    out = out.detach().float()
    if source == "student":
        assert n == bl + 2 * nu and teacher_calls == []
        weak, strong = out[bl:bl + nu], out[bl + nu:]
    else:
        assert n == bl + nu and len(teacher_calls) == 1
        weak, strong = teacher_calls[0], out[bl:]
    q = weak.softmax(1)
    mask = (q.max(1).values >= 0.3).float()
    pos = (torch.nn.functional.cross_entropy(strong, q.argmax(1), reduction="none") * mask).mean()
    sup = torch.nn.functional.cross_entropy(out[:bl], tr.data.train_y[labels[0]])
    _, s_sup, s_pos, _ = tr.sums.tolist()
    assert s_sup == pytest.approx(sup.item(), rel=1e-5)
    assert s_pos == pytest.approx(pos.item(), rel=1e-5, abs=1e-7)


def test_student_pseudo_labels_train_every_threshold_rule(tiny_overrides):
    for kind in sorted(THRESHOLDS):  # from the registry, so a new rule is trained here at once
        rec = Trainer(cfg_of(tiny_overrides, **{"algo.name": "custom", "algo.threshold": kind, "algo.negatives": "snl",
                                                "algo.pseudo_labels": "student", "train.steps": 2,
                                                "train.eval_every": 0})).fit()
        assert all(math.isfinite(h["loss"]) for h in rec.history), kind
        assert rec.summary["threshold"] == kind and "mask_rate" in rec.history[-1]


@pytest.mark.parametrize("kind", sorted(NEGATIVES))
def test_every_negative_selector_trains_under_a_threshold(kind, tiny_overrides):
    cfg = cfg_of(tiny_overrides, **{"algo.name": "custom", "algo.threshold": "fixed", "algo.negatives": kind,
                                    "train.steps": 2, "train.eval_every": 0})
    rec = Trainer(cfg).fit()
    assert rec.summary["negatives"] == kind
    assert all(math.isfinite(h["loss"]) for h in rec.history) and 0 <= rec.history[-1]["neg_rate"] <= 1


def test_pseudo_label_source_is_validated():
    with pytest.raises(Exception, match="algo.pseudo_labels"):
        Config.default().with_overrides({"algo.pseudo_labels": "ema"})
    with pytest.raises(Exception, match="algo.pseudo_labels"):
        Config.default().with_overrides({"algo.name": "custom", "algo.threshold": "fixed", "algo.negatives": "ups",
                                         "algo.negatives_args": {"kappa_neg": 0.005},
                                         "algo.pseudo_labels": "student"})


def test_backbone_lr_scale_slows_every_parameter_but_the_head(tiny_overrides):
    """One plain SGD step from the same start: the head moves as at scale 1, every
    other parameter by the scale's fraction; at scale 1 the optimizer keeps the two
    groups (decayed or not) the recorded runs trained with."""
    plain = {"algo.name": "supervised", "train.momentum": 0.0, "train.weight_decay": 0.0, "train.clip_grad": 0.0}
    moved, groups = {}, {}
    for scale in (1.0, 0.1):
        tr = Trainer(cfg_of(tiny_overrides, **plain, **{"train.backbone_lr_scale": scale}))
        before = {n: p.detach().clone() for n, p in tr.student.named_parameters()}
        tr.train_step()
        moved[scale] = {n: p.detach() - before[n] for n, p in tr.student.named_parameters()}
        groups[scale] = [(len(g["params"]), g["lr"]) for g in tr.optimizer.param_groups]
    assert len(groups[1.0]) == 2 and len(groups[0.1]) == 4
    assert any(moved[1.0]["head.weight"].abs().flatten() > 0)
    for name, d in moved[1.0].items():
        share = 1.0 if name.startswith("head.") else 0.1
        # atol: a float32 parameter near 1 keeps its step only to about 1e-7
        torch.testing.assert_close(moved[0.1][name], share * d, rtol=1e-3, atol=1e-6, msg=name)
    with pytest.raises(ValueError, match="train.backbone_lr_scale"):
        cfg_of(tiny_overrides, **{"train.backbone_lr_scale": 0.0})
