"""ssfer.model.pretrained: local checkpoints into the timm body, with a report."""
import pytest
import torch
import torchvision
from torch import nn

from ssfer.model import build_model, load_pretrained


@pytest.fixture(scope="module")
def tv_resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18().state_dict()


def _msceleb_style(tmp_path, state, wrap="state_dict", prefix="module."):
    """A checkpoint shaped like Ada-CM's resnet18_msceleb.pth."""
    path = tmp_path / "resnet18_msceleb.pth"
    sd = {prefix + k: v for k, v in state.items()}
    torch.save({wrap: sd, "epoch": 90, "arch": "resnet18"} if wrap else sd, path)
    return path


@pytest.fixture(scope="module")
def msceleb_path(tmp_path_factory, tv_resnet18):
    return _msceleb_style(tmp_path_factory.mktemp("ckpt"), tv_resnet18)


def test_msceleb_style_checkpoint_lands_in_the_timm_body(msceleb_path, tv_resnet18):
    path = msceleb_path
    model = build_model("resnet18", num_classes=7, in_chans=3, pretrained_path=path)
    body = model.body.state_dict()
    for name in ("conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer3.0.downsample.0.weight",
                 "layer4.1.bn2.bias"):
        assert torch.equal(body[name], tv_resnet18[name]), name
    report = model.load_report
    assert report.body_matched == report.body_total == len(body) == 120
    assert report.fraction == 1.0 and not report.missing and not report.shape_mismatch
    assert sorted(report.unexpected) == ["fc.bias", "fc.weight"]  # the face-ID head is skipped
    assert model.head.weight.shape == (7, 512)


def test_grey_input_sums_the_rgb_kernels(msceleb_path, tv_resnet18):
    path = msceleb_path
    model = build_model("resnet18", in_chans=1, pretrained_path=path)
    torch.testing.assert_close(model.body.conv1.weight, tv_resnet18["conv1.weight"].sum(1, keepdim=True))
    assert model.load_report.adapted == ["body.conv1.weight"]


@pytest.mark.parametrize("wrap, prefix", [("model", ""), (None, ""), (None, "module._orig_mod.")])
def test_other_wrappings(tmp_path, tv_resnet18, wrap, prefix):
    path = _msceleb_style(tmp_path, tv_resnet18, wrap=wrap, prefix=prefix)
    model = build_model("resnet18", in_chans=3, pretrained_path=path)
    assert model.load_report.body_matched == 120


def test_sequential_features_naming(tmp_path, tv_resnet18):
    # DAN/RUL keep nn.Sequential(*list(resnet.children())[:-2]) as "features"
    index = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    state = {f"features.{index[k.split('.')[0]]}.{k.split('.', 1)[1]}": v
             for k, v in tv_resnet18.items() if not k.startswith("fc.")}
    path = tmp_path / "dan.pth"
    torch.save({"state_dict": state}, path)
    model = build_model("resnet18", in_chans=3, pretrained_path=path)
    assert model.load_report.body_matched == 120
    assert torch.equal(model.body.layer2[1].conv2.weight,
                       tv_resnet18["layer2.1.conv2.weight"])


def test_unrelated_checkpoint_is_refused_and_leaves_the_model_alone(tmp_path):
    path = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v2().state_dict(), path)
    model = build_model("resnet18", in_chans=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"(?s)refusing a near-empty load.*0/120 body tensors"):
        load_pretrained(model, path)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_partial_load_threshold_and_shape_mismatch(tmp_path, tv_resnet18):
    state = {k: v for k, v in tv_resnet18.items() if k.startswith(("conv1", "bn1", "layer1"))}
    state["layer1.0.conv2.weight"] = torch.zeros(64, 64, 1, 1)  # wrong kernel size
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="min_match=50%"):
        build_model("resnet18", in_chans=3, pretrained_path=path)
    model = build_model("resnet18", in_chans=3)
    report = load_pretrained(model, path, min_match=0.1)
    assert report.shape_mismatch == [("body.layer1.0.conv2.weight", (64, 64, 1, 1), (64, 64, 3, 3))]
    assert report.body_matched == len(state) - 1 and "body.layer4.0.conv1.weight" in report.missing
    assert torch.equal(model.body.layer1[1].conv1.weight, tv_resnet18["layer1.1.conv1.weight"])


def test_bad_files_are_named(tmp_path):
    model = build_model("resnet18", in_chans=3)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_pretrained(model, tmp_path / "nope.pth")
    pickled = tmp_path / "module.pth"
    torch.save(nn.Linear(2, 2), pickled)  # a whole module, not weights only
    with pytest.raises(ValueError, match="weights-only"):
        load_pretrained(model, pickled)
    empty = tmp_path / "empty.pth"
    torch.save({"epoch": 3}, empty)
    with pytest.raises(ValueError, match="expected a state_dict"):
        load_pretrained(model, empty)
