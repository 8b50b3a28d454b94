"""ssfer.model.backbone / attention: FERNet on timm bodies."""
import pytest
import torch
from torch import nn

from ssfer.model import FERNet, build_model
from ssfer.model.attention import NoAttention, RegionAttention, RegionDropout


BODY = "test_resnet"  # timm's 0.4M-parameter ResNet for tests: same code paths as resnet18


def _x(b=2, c=1, s=48, seed=0):
    return torch.randn(b, c, s, s, generator=torch.Generator().manual_seed(seed))


# every attention and every dropout at least once
@pytest.mark.parametrize("attention, dropout", [("none", "none"), ("spatial", "block"), ("region", "channel"),
                                                ("spatial", "region")])
def test_attention_and_dropout_train_and_evaluate(attention, dropout):
    torch.manual_seed(0)
    model = build_model(BODY, num_classes=7, attention=attention, feature_dropout=dropout, drop_prob=0.3)
    x = _x()
    model.train()
    logits = model(x)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert model.head.weight.grad is not None and torch.isfinite(model.head.weight.grad).all()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))  # no dropout at eval time
        maps = model.attention_maps(x)
    assert maps.shape == (2, 2, 2)  # 48 px / 32


def test_region_attention_starts_as_identity_and_spatial_as_uniform_scale():
    x = _x(s=64)
    for attention, scale in (("region", 1.0), ("spatial", 1.5), ("none", 1.0)):
        torch.manual_seed(0)
        model = build_model(BODY, attention=attention, feature_dropout="none").eval()
        with torch.no_grad():
            base = model.body_map(x)
            torch.testing.assert_close(model.forward_features(x), base * scale)


def test_none_attention_map_is_channel_mean():
    model = build_model(BODY, attention="none", feature_dropout="none").eval()
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(model.attention_maps(x), model.body_map(x).mean(1))


def test_region_dropout_zeroes_one_cell_and_rescales():
    drop = RegionDropout(p=1.0, grid=3).train()
    out = drop(torch.ones(5, 2, 6, 6))
    for o in out:
        zero = o[0] == 0
        assert zero.sum() == 4  # one 2x2 cell of the 3x3 grid on a 6x6 map
        r, c = zero.nonzero().unbind(1)
        assert r.max() - r.min() == 1 and c.max() - c.min() == 1 and r.min() % 2 == 0 and c.min() % 2 == 0
        torch.testing.assert_close(o[:, ~zero], torch.full_like(o[:, ~zero], 36 / 32))
        assert torch.equal(o[0], o[1])  # one mask for all channels
    assert torch.equal(drop.eval()(torch.ones(2, 1, 6, 6)), torch.ones(2, 1, 6, 6))


def test_region_dropout_probability():
    torch.manual_seed(0)
    out = RegionDropout(p=0.25, grid=2).train()(torch.ones(2000, 1, 4, 4))
    hit = (out == 0).flatten(1).any(1).float().mean()
    assert 0.2 < hit < 0.3


def test_feature_dropout_is_active_only_in_training():
    torch.manual_seed(0)
    model = build_model(BODY, attention="none", feature_dropout="channel", drop_prob=0.5)
    x = _x(b=4, s=64)
    with torch.no_grad():
        model.train()  # the same batch gives the same batch-norm statistics twice
        base, out = model.body_map(x), model.forward_features(x)
        alive = (base != 0).any(dim=(2, 3))
        dropped = (out == 0).all(dim=(2, 3)) & alive
        assert 0.35 < dropped.sum() / alive.sum() < 0.65
        kept = alive & ~dropped
        torch.testing.assert_close(out[kept], 2 * base[kept])  # Dropout2d rescales by 1 / (1 - p)
        model.eval()
        assert torch.equal(model.forward_features(x), model.body_map(x))


def test_channels_last_matches_contiguous():
    model = build_model(BODY, attention="spatial").eval()
    x = _x(b=2, c=1, s=64)
    cl_model = build_model(BODY, attention="spatial").eval()
    cl_model.load_state_dict(model.state_dict())
    cl_model = cl_model.to(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(cl_model(x.to(memory_format=torch.channels_last)), model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("attention", ["spatial", "region"])
def test_cpu_autocast_bf16(attention):
    torch.manual_seed(0)
    model = build_model(BODY, in_chans=3, attention=attention, feature_dropout="block").eval()
    x = _x(c=3, s=64)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
            maps = model.attention_maps(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(maps.float()).all()
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.05


@pytest.mark.slow  # torch.compile traces the network (about 8 s)
def test_traces_without_graph_breaks():
    # fullgraph=True fails on any graph break (data-dependent branch, .item(), host sync)
    model = build_model(BODY, attention="spatial", feature_dropout="block", drop_prob=0.5).train()
    assert torch.compile(model, backend="eager", fullgraph=True)(_x()).shape == (2, 7)
    region = nn.Sequential(RegionAttention(8, grid=3), RegionDropout(0.5, grid=3)).train()
    assert torch.compile(region, backend="eager", fullgraph=True)(torch.randn(2, 8, 4, 4)).shape == (2, 8, 4, 4)


@pytest.mark.parametrize("name, kwargs, size", [
    ("test_efficientnet", {}, 64),
    ("test_vit", {"img_size": 48}, 48),  # a token sequence, laid back on its patch grid
])
def test_other_timm_bodies(name, kwargs, size):
    model = build_model(name, num_classes=5, in_chans=1, attention="region", feature_dropout="block", **kwargs)
    model.eval()
    x = _x(s=size)
    with torch.no_grad():
        assert model(x).shape == (2, 5)
        maps = model.attention_maps(x)
    assert maps.ndim == 3 and maps.shape[0] == 2


class _FakeBody(nn.Module):
    def __init__(self, fmt, out):
        super().__init__()
        self.output_fmt, self.num_features, self.out = fmt, out.shape[-1] if fmt == "NHWC" else out.shape[1], out
        self.w = nn.Parameter(torch.ones(()))

    def forward_features(self, x):
        return self.out * self.w


def test_nhwc_maps_are_permuted_and_bad_ranks_rejected():
    f = torch.randn(2, 3, 3, 8)
    model = FERNet(_FakeBody("NHWC", f), 4, NoAttention(), nn.Identity())
    torch.testing.assert_close(model.body_map(torch.zeros(2, 1, 8, 8)), f.permute(0, 3, 1, 2))
    bad = FERNet(_FakeBody("NCHW", torch.randn(2, 8)), 4, NoAttention(), nn.Identity())
    with pytest.raises(ValueError, match="4-D feature map"):
        bad(torch.zeros(2, 1, 8, 8))


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="attention='cbam'"):
        build_model(attention="cbam")
    with pytest.raises(ValueError, match="feature_dropout='spatial'"):
        build_model(feature_dropout="spatial")
    with pytest.raises(ValueError, match="pretrained"):
        build_model(pretrained=True)
    with pytest.raises(ValueError, match="drop_prob"):
        build_model(drop_prob=1.5)


@pytest.mark.parametrize("name, kwargs", [("test_resnet", {}), ("resnet10t", {"channels": (8, 16, 32, 64)})])
def test_small_stem_keeps_a_6x6_map_at_48px_and_trains(name, kwargs):
    big = build_model(name, **kwargs).eval()
    small = build_model(name, stem="small", **kwargs).eval()
    x = _x()
    with torch.no_grad():
        assert big.body_map(x).shape[-2:] == (2, 2)  # ImageNet stem: stride 32
        assert small.body_map(x).shape[-2:] == (6, 6)  # stride-1 stem: stride 8
        assert small.attention_maps(x).shape == (2, 6, 6)
    assert isinstance(small.body.maxpool, nn.Identity) and small.body.conv1.stride == (1, 1)
    small.train()(x).sum().backward()
    assert small.body.conv1.weight.grad is not None


def test_small_pool_stem_with_output_stride_16_also_keeps_6x6():
    model = build_model("resnet10t", stem="small_pool", channels=(16, 32, 64, 128), output_stride=16).eval()
    with torch.no_grad():
        assert model.body_map(_x()).shape[-2:] == (6, 6)
    assert isinstance(model.body.maxpool, nn.MaxPool2d) and model.body.conv1.stride == (1, 1)


def test_small_stem_refuses_a_body_without_a_resnet_stem():
    with pytest.raises(ValueError, match="stem='small'.*ResNet"):
        build_model("vit_tiny_patch16_224", img_size=48, stem="small")
    with pytest.raises(ValueError, match="stem='wide'"):
        build_model(BODY, stem="wide")


def test_mc_dropout_passes_sample_only_the_dropout_and_restore_every_mode():
    torch.manual_seed(0)
    model = build_model(BODY, num_classes=7, feature_dropout="channel", drop_prob=0.5, head_dropout=0.2).eval()
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    stats = [m.running_mean.clone() for m in bn]
    x = _x()
    with torch.no_grad():
        mc = model.mc_dropout_logits(x, 5)
        plain = model(x)
    assert mc.shape == (5, 2, 7)
    assert not torch.equal(mc[0], mc[1])                        # the dropout samples in every pass
    assert all(torch.equal(a, m.running_mean) for a, m in zip(stats, bn))  # batch norm stayed in eval
    assert not any(m.training for m in model.modules())         # every mode restored
    assert torch.equal(model(x), plain)
    still = build_model(BODY, num_classes=7, feature_dropout="none").eval()
    with torch.no_grad():
        mc = still.mc_dropout_logits(x, 3)
    assert torch.equal(mc[0], mc[2])                            # nothing to sample: no spread
