"""ssfer.pretrain's parts, each on its own: the config, the two views, BYOL's
networks, schedule and loss, and the kNN probe on cases whose answer is known."""
import math
import re

import pytest
import torch

from ssfer.config import ConfigError
from ssfer.model import build_model
from ssfer.pretrain.byol import BYOL, byol_loss, target_momentum
from ssfer.pretrain.config import PretrainConfig, ViewConfig
from ssfer.pretrain.probe import features, knn_accuracy, knn_predict
from ssfer.pretrain.views import PairViews
from ssfer.views import Views


# ---------------------------------------------------------------- config

@pytest.mark.parametrize("key, value, message", [
    ("train.epochs", 0, r"train\.epochs: expected int \(Range\[1, inf\)\), got 0"),
    ("train.lr", -1, r"train\.lr: expected float \(Range\(0, inf\)\), got -1"),
    ("train.batch_size", 1, r"train\.batch_size: expected int"),
    ("views.flip", 1.5, r"views\.flip: expected float \(Range\[0, 1\]\)"),
    ("views.crop_scale", [0.0, 1.0], r"views\.crop_scale: expected list\[float\]"),
    ("views.crop_scale", [0.9, 0.5], r"views\.crop_scale: expected \[low, high\], got \[0\.9, 0\.5\]"),
    ("views.blur", [1.0], r"views\.blur: expected one probability per view"),
    ("byol.momentum", 1.0, r"byol\.momentum: expected float"),
    ("probe.bank", "test", r"probe\.bank: expected Literal\['pool', 'labeled'\]"),
    ("train.optimizer", "lars", r"train\.optimizer: expected Literal"),
    ("train.warmup_epochs", 10, r"train\.warmup_epochs: must be below train\.epochs \(10\)"),
    ("model.pretrained_path", "/x.pt", r"model\.pretrained_path: pretraining starts from random weights"),
    ("model.name", "resnet1O", r"model\.name: timm has no model"),           # the run config's own check
    ("train.device", "tpu", r"train\.device: must be auto, cpu or cuda"),   # likewise
])
def test_a_bad_value_is_one_config_error_naming_its_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        PretrainConfig.default().with_overrides({key: value})


def test_unknown_keys_are_refused():
    with pytest.raises(ConfigError, match=r"unknown config key\(s\): byol\.tau"):
        PretrainConfig.from_dict({"byol": {"tau": 0.9}})
    with pytest.raises(ConfigError, match=r"unknown config key 'algo\.name'"):
        PretrainConfig.default().with_overrides({"algo.name": "fixmatch"})


def test_the_probe_needs_validation_faces():
    with pytest.raises(ConfigError, match=r"^data\.val_split: the kNN probe needs validation faces"):
        PretrainConfig.from_dict({"split": {"val_per_class": 0}})
    assert PretrainConfig.from_dict({"split": {"val_per_class": 0}, "data": {"val_split": "val"}})


def test_the_hash_leaves_out_the_progress_bar_only():
    cfg = PretrainConfig.default()
    assert cfg.with_overrides({"train.progress": False}).hash() == cfg.hash()
    assert cfg.with_overrides({"train.seed": 1}).hash() != cfg.hash()
    assert PretrainConfig.from_dict(cfg.to_dict()).hash() == cfg.hash()


def test_from_yaml_names_the_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("train:\n  epochs: zero\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: train.epochs: expected int")):
        PretrainConfig.from_yaml(path)


# ---------------------------------------------------------------- views

def _faces(n=6, size=20, seed=0):
    return torch.randint(0, 256, (n, 1, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


NO_CHANGE = {"crop_scale": [1.0, 1.0], "crop_ratio": [1.0, 1.0], "flip": 0.0, "jitter": 0.0, "blur": [0.0, 0.0]}


def test_views_with_nothing_drawn_are_every_run_s_eval_view():
    x = _faces()
    v1, v2 = PairViews(ViewConfig(**NO_CHANGE), 1).pair(x, torch.Generator().manual_seed(0))
    expected = Views.for_channels(1).eval_view(x)
    torch.testing.assert_close(v1, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(v2, expected, atol=1e-5, rtol=0)


def test_a_certain_flip_mirrors_the_face():
    x = _faces()
    v, _ = PairViews(ViewConfig(**{**NO_CHANGE, "flip": 1.0}), 1).pair(x)
    torch.testing.assert_close(v, Views.for_channels(1).eval_view(x).flip(3), atol=1e-5, rtol=0)


def test_a_blur_keeps_the_mean_and_lowers_the_spread():
    x = _faces(size=32)
    cfg = ViewConfig(**{**NO_CHANGE, "blur": [1.0, 0.0], "blur_sigma": [1.0, 1.0]})
    blurred, plain = PairViews(cfg, 1).pair(x)
    assert (blurred.std(dim=(1, 2, 3)) < 0.6 * plain.std(dim=(1, 2, 3))).all()
    torch.testing.assert_close(blurred.mean(dim=(1, 2, 3)), plain.mean(dim=(1, 2, 3)), atol=0.02, rtol=0)


def test_views_are_seeded_differ_between_the_two_and_stay_in_range():
    x = _faces(n=16, size=24)
    views = PairViews(ViewConfig(), 1)
    a1, a2 = views.pair(x, torch.Generator().manual_seed(3))
    b1, b2 = views.pair(x, torch.Generator().manual_seed(3))
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, a2)
    assert a1.shape == x.shape and a1.dtype == torch.float32
    assert a1.min() >= -1 and a1.max() <= 1  # [0, 255] normalised as every run's views


def test_crop_boxes_keep_most_of_the_face():
    """A face that is one bright square in the middle stays in every view: the
    crop floor (40 % of the area) cannot cut it away."""
    x = torch.zeros(64, 1, 24, 24, dtype=torch.uint8)
    x[:, :, 9:15, 9:15] = 255
    cfg = ViewConfig(**{**NO_CHANGE, "crop_scale": [0.4, 1.0], "crop_ratio": [0.75, 1.3333], "flip": 0.5})
    v, _ = PairViews(cfg, 1).pair(x, torch.Generator().manual_seed(0))
    assert (v.amax(dim=(1, 2, 3)) > 0.9).all()


# ---------------------------------------------------------------- BYOL

def test_momentum_follows_byol_s_cosine():
    assert target_momentum(0, 100, 0.99) == pytest.approx(0.99)
    assert target_momentum(50, 100, 0.99) == pytest.approx(0.995)
    assert target_momentum(100, 100, 0.99) == pytest.approx(1.0)


def test_loss_is_zero_for_aligned_and_four_for_opposite_vectors():
    p = torch.randn(5, 8)
    assert byol_loss(p, 3 * p).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(p, -p).item() == pytest.approx(4.0, abs=1e-6)
    p.requires_grad_(True)
    z = torch.randn(5, 8, requires_grad=True)
    byol_loss(p, z).backward()
    assert z.grad is None  # the target side carries no gradient


def _byol(seed=0):
    torch.manual_seed(seed)
    net = build_model("test_resnet", num_classes=7, in_chans=1, feature_dropout="block", drop_prob=0.1)
    return BYOL(net, 16, 8, 16)


def test_target_starts_as_the_online_network_and_follows_it_by_ema():
    byol = _byol()
    enc, tgt = dict(byol.encoder.named_parameters()), dict(byol.target_encoder.named_parameters())
    assert enc.keys() == tgt.keys() and all(torch.equal(enc[k], tgt[k]) for k in enc)
    assert not any(p.requires_grad for p in byol.target_encoder.parameters())
    assert isinstance(byol.target_encoder.feature_dropout, torch.nn.Identity)  # a clean target
    before = {k: v.clone() for k, v in tgt.items()}
    with torch.no_grad():
        for p in byol.encoder.parameters():
            p.add_(1.0)
    byol.update_target(0.75)
    for k, p in byol.target_encoder.named_parameters():
        torch.testing.assert_close(p, 0.75 * before[k] + 0.25 * enc[k])
    byol.update_target(1.0)  # at the end of the schedule the target stands still
    for k, p in byol.target_encoder.named_parameters():
        torch.testing.assert_close(p, 0.75 * before[k] + 0.25 * enc[k])


def test_one_step_trains_the_online_side_only():
    byol = _byol()
    x = torch.randn(4, 1, 16, 16)
    loss = byol(x, x.flip(3))
    assert 0 <= loss.item() <= 8
    loss.backward()
    assert all(p.grad is not None for p in byol.predictor.parameters())
    assert all(p.grad is not None for p in byol.projector.parameters())
    assert all(p.grad is None for p in byol.target_projector.parameters())


def test_the_backbone_state_is_the_fernet_s_names_without_a_head():
    byol = _byol()
    state = byol.backbone_state()
    assert any(k.startswith("body.") for k in state) and not any(k.startswith("head") for k in state)
    fresh = build_model("test_resnet", num_classes=7, in_chans=1).state_dict()
    assert set(state) == {k for k in fresh if not k.startswith("head.")}


# ---------------------------------------------------------------- the kNN probe

def test_knn_finds_the_class_of_each_query_when_classes_are_apart():
    bank = torch.eye(3).repeat_interleave(4, 0) + 0.05 * torch.randn(12, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(3).repeat_interleave(4)
    queries = 7.0 * torch.eye(3)  # length does not matter: cosine
    assert knn_predict(bank, labels, queries, 3, k=4).tolist() == [0, 1, 2]
    assert knn_accuracy(bank, labels, queries, torch.tensor([0, 1, 2]), 3, k=4) == 1.0
    assert knn_accuracy(bank, labels, queries, torch.tensor([0, 2, 2]), 3, k=4) == pytest.approx(2 / 3)


def test_knn_uses_cosine_not_distance():
    bank = torch.tensor([[100.0, 0.0], [0.6, 0.8]])  # far away but the same direction as the query
    assert knn_predict(bank, torch.tensor([0, 1]), torch.tensor([[1.0, 0.0]]), 2, k=1).tolist() == [0]


def test_knn_votes_are_weighted_by_similarity_and_temperature():
    """One neighbour of class 1 very close, two of class 0 a bit further: a
    majority at a high temperature, the nearest at a low one."""
    angle = torch.tensor([0.0, 0.5, -0.5])  # radians from the query
    bank = torch.stack([angle.cos(), angle.sin()], 1)
    labels = torch.tensor([1, 0, 0])
    query = torch.tensor([[1.0, 0.0]])
    assert knn_predict(bank, labels, query, 2, k=3, temperature=100.0).tolist() == [0]
    assert knn_predict(bank, labels, query, 2, k=3, temperature=0.01).tolist() == [1]
    assert knn_predict(bank, labels, query, 2, k=3, temperature=1e-6).tolist() == [1]  # no overflow


def test_knn_chunks_give_the_same_answer():
    g = torch.Generator().manual_seed(1)
    bank, labels = torch.randn(50, 6, generator=g), torch.randint(0, 4, (50,), generator=g)
    queries = torch.randn(33, 6, generator=g)
    assert torch.equal(knn_predict(bank, labels, queries, 4, k=5, chunk=7),
                       knn_predict(bank, labels, queries, 4, k=5, chunk=1000))


def test_features_are_unit_length_and_leave_the_mode_as_it_was():
    byol = _byol()
    byol.encoder.train()
    f = features(byol.encoder, _faces(n=5, size=16), Views.for_channels(1).eval_view, batch=2)
    assert f.shape == (5, byol.encoder.num_features)
    torch.testing.assert_close(f.norm(dim=1), torch.ones(5))
    assert byol.encoder.training
    assert math.isfinite(float(f.sum()))
