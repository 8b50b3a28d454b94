"""FERNet: a timm body, local attention on its last feature map, feature-map
dropout, and a linear head: the paper's backbone as this project builds it."""
from __future__ import annotations

import math

import timm
import torch
from torch import nn

from .attention import ATTENTIONS, FEATURE_DROPOUTS, make_attention, make_feature_dropout
from .pretrained import load_pretrained

STEMS = ("imagenet", "small", "small_pool")


def small_stem(body: nn.Module, in_chans: int, keep_pool: bool = False) -> None:
    """Swap a timm ResNet's ImageNet stem (stride-2 convolution, then max-pool,
    stride 4 in all) for a stride-1 3×3 convolution, in place; ``keep_pool``
    keeps the max-pool after it (stride 2).

    Without the pool a 48-px face leaves the body as a 6×6 map instead of 2×2,
    so local attention and region dropout act on eyes, brows and mouth rather
    than on quarters of the face; with the pool, timm's ``output_stride=16``
    (a dilated last stage) gives the same 6×6 map for about a third of the
    arithmetic, since the first stage then runs at 24 px. The stem's norm and
    activation (``bn1``, ``act1``) stay; only its resolution changes.
    """
    conv1, pool = getattr(body, "conv1", None), getattr(body, "maxpool", None)
    bn1 = getattr(body, "bn1", None)
    if conv1 is None or pool is None or not isinstance(bn1, nn.BatchNorm2d):
        raise ValueError(f"stem='small' needs a timm ResNet-family body (conv1, bn1, maxpool); "
                         f"{type(body).__name__} has none")
    body.conv1 = nn.Conv2d(in_chans, bn1.num_features, kernel_size=3, stride=1, padding=1, bias=False)
    if not keep_pool:
        body.maxpool = nn.Identity()
    for info in getattr(body, "feature_info", []):  # timm's record of each stage's stride
        info["reduction"] = max(1, info["reduction"] // (2 if keep_pool else 4))


class FERNet(nn.Module):
    """body -> (B, D, h, w) -> attention -> feature dropout -> GAP -> dropout -> Linear.

    Any timm model whose ``forward_features`` gives a spatial map works: NCHW
    CNN maps, NHWC maps (Swin-style, ``output_fmt == "NHWC"``) and ViT token
    sequences (prefix tokens dropped, patch tokens laid back on their square grid).
    """

    def __init__(self, body: nn.Module, num_classes: int, attention: nn.Module,
                 feature_dropout: nn.Module, head_dropout: float = 0.0):
        super().__init__()
        self.body = body
        self.attention = attention
        self.feature_dropout = feature_dropout
        self.num_features = int(body.num_features)
        self.num_classes = num_classes
        self.head_drop = nn.Dropout(head_dropout)
        self.head = nn.Linear(self.num_features, num_classes)
        self._output_fmt = str(getattr(body, "output_fmt", "NCHW"))
        self._num_prefix_tokens = int(getattr(body, "num_prefix_tokens", 0))
        self.load_report = None  # a pretrained.LoadReport once local weights are loaded

    def body_map(self, x: torch.Tensor) -> torch.Tensor:
        """The body's last feature map as (B, D, h, w), before attention."""
        f = self.body.forward_features(x)
        # branches on ranks and attributes only: static under torch.compile
        if f.ndim == 3:
            tokens = f[:, self._num_prefix_tokens:]
            n = tokens.shape[1]
            side = math.isqrt(n)
            if side * side != n:
                raise ValueError(f"{type(self.body).__name__}: {n} patch tokens do not form a square grid; "
                                 "pass a square img_size")
            return tokens.transpose(1, 2).reshape(f.shape[0], f.shape[2], side, side)
        if f.ndim != 4:
            raise ValueError(f"{type(self.body).__name__}.forward_features returned shape {tuple(f.shape)}; "
                             "FERNet needs a 4-D feature map or a 3-D token sequence")
        if self._output_fmt == "NHWC":
            f = f.permute(0, 3, 1, 2)
        return f

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_dropout(self.attention(self.body_map(x)))

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(f.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def mc_dropout_logits(self, x: torch.Tensor, passes: int) -> torch.Tensor:
        """(passes, B, C) logits of Monte-Carlo dropout passes: feature-map and
        head dropout sample as in training, everything else (batch norm) keeps
        its current mode. The body and attention hold no dropout here, so they
        run once and the passes share their map."""
        f = self.attention(self.body_map(x))
        drops = (self.feature_dropout, self.head_drop)
        modes = [m.training for m in drops]
        try:
            for m in drops:
                m.train()
            return torch.stack([self.forward_head(self.feature_dropout(f)) for _ in range(passes)])
        finally:
            for m, mode in zip(drops, modes):
                m.train(mode)

    def attention_maps(self, x: torch.Tensor) -> torch.Tensor:
        """(B, h, w) attention over the last map, for plotting over faces; with
        attention="none", the channel-mean activation. Call under no_grad/eval
        as the plot needs; this method changes no mode."""
        return self.attention.attention_map(self.body_map(x))


def build_model(name: str = "resnet18", num_classes: int = 7, in_chans: int = 1,
                attention: str = "spatial", feature_dropout: str = "block",
                drop_prob: float = 0.1, block_size: int = 3, pretrained_path: str | None = None,
                min_match: float = 0.5, region_grid: int = 3, head_dropout: float = 0.0,
                stem: str = "imagenet", **timm_kwargs) -> FERNet:
    """Build a FERNet on ``timm.create_model(name)``. Never downloads.

    attention: "none" | "spatial" (CBAM spatial map, x·(1+a)) | "region" (g×g grid).
    feature_dropout: "none" | "block" (DropBlock, drop_prob = share of the map
        dropped) | "channel" (Dropout2d(drop_prob)) | "region" (each sample loses
        one random cell of the g×g grid with probability drop_prob).
    region_grid: g for region attention and region dropout.
    pretrained_path: a local checkpoint loaded with ``load_pretrained``, which
        refuses loads matching fewer than ``min_match`` of the body's tensors.
    stem: "imagenet" (the body as timm builds it; what pretrained checkpoints
        expect) | "small" (timm ResNets only: a stride-1 3×3 stem) | "small_pool"
        (the same, followed by the body's stride-2 max-pool); see ``small_stem``.
    timm_kwargs: passed to timm.create_model (e.g. img_size for ViTs, drop_path_rate,
        a ResNet's stage widths ``channels``).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes}: expected >= 1")
    # fail before building the body: creating a large timm model takes seconds
    if attention not in ATTENTIONS:
        raise ValueError(f"attention={attention!r}: expected one of {ATTENTIONS}")
    if feature_dropout not in FEATURE_DROPOUTS:
        raise ValueError(f"feature_dropout={feature_dropout!r}: expected one of {FEATURE_DROPOUTS}")
    if not 0.0 <= drop_prob <= 1.0:
        raise ValueError(f"drop_prob={drop_prob}: expected a probability in [0, 1]")
    if stem not in STEMS:
        raise ValueError(f"stem={stem!r}: expected one of {STEMS}")
    for bad in ("pretrained", "global_pool", "features_only"):
        if bad in timm_kwargs:
            raise ValueError(f"build_model: {bad!r} is fixed by FERNet; local weights go through pretrained_path")
    body = timm.create_model(name, pretrained=False, num_classes=0, global_pool="", in_chans=in_chans,
                             features_only=False, **timm_kwargs)
    if not hasattr(body, "forward_features") or not hasattr(body, "num_features"):
        raise ValueError(f"timm model {name!r} has no forward_features/num_features; FERNet cannot use it")
    if stem != "imagenet":
        small_stem(body, in_chans, keep_pool=stem == "small_pool")
    model = FERNet(
        body, num_classes,
        attention=make_attention(attention, int(body.num_features), grid=region_grid),
        feature_dropout=make_feature_dropout(feature_dropout, drop_prob, block_size=block_size, grid=region_grid),
        head_dropout=head_dropout,
    )
    if pretrained_path is not None:
        # kept on the model so the run record can say what was loaded
        model.load_report = load_pretrained(model, pretrained_path, min_match=min_match)
    return model


def model_for(cfg, num_classes: int, pretrained: bool = True) -> FERNet:
    """The FERNet a run's config describes (``cfg.model``, ``cfg.data.channels``).

    pretrained=False skips ``model.pretrained_path``: for a body whose weights
    are loaded next from a finished run.
    """
    m = cfg.model
    return build_model(m.name, num_classes=num_classes, in_chans=cfg.data.channels, attention=m.attention,
                       feature_dropout=m.feature_dropout, drop_prob=m.drop_prob, stem=m.stem,
                       pretrained_path=m.pretrained_path if pretrained else None, **m.timm_args)
