"""Run configuration: plain typed values, validated in one place.

A ``Config`` is a tree of frozen dataclasses. ``Config.from_dict`` is the only
way in from untyped input (YAML files, ``--set key=value``, notebook
parameters): it rejects unknown keys and ill-typed or out-of-range values
before anything runs, naming the dotted key. The hash of the full config keys
the run cache.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ssfer import typecheck
from ssfer.errors import ConfigError


class YamlLoader(yaml.SafeLoader):
    """SafeLoader that reads numbers as YAML 1.2 and Python do.

    PyYAML follows YAML 1.1, where ``3e-3`` and ``1e30`` are strings (1.1 wants a
    dot and a signed exponent) and ``010`` is octal 8. Here every float literal
    Python writes (``3e-3``, ``1E5``, ``.5``, ``-.5``, ``5.``, ``1_000.0``) is a
    float, and integers are decimal, ``0x``, ``0o`` or ``0b``; a leading-zero
    ``010`` stays a string, so an int field rejects it instead of reading 8.
    ``.inf``/``.nan`` load as floats; config fields refuse them.

    A key given twice in one mapping is an error (``DuplicateKey``), not the
    last one silently winning.
    """

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            _refuse_duplicate_keys(self, node)
        return super().construct_mapping(node, deep=deep)


class DuplicateKey(yaml.YAMLError):
    """A mapping gives ``key`` twice: first on line ``first``, again on ``line``."""

    def __init__(self, key, line: int, first: int):
        super().__init__(f"line {line}: key {key!r} is given twice in one mapping (first on line {first})")
        self.key, self.line, self.first = key, line, first


def _refuse_duplicate_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    seen: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
            continue  # "<<: *base" merges a mapping whose keys the ones here may override
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise DuplicateKey(key, line, seen[key])
        seen[key] = line


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:int")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
YamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"""^(?:
      [-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    | [-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    | [-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    | [-+]?\.(?:inf|Inf|INF)
    | \.(?:nan|NaN|NAN))$""", re.X), list("-+0123456789."))
YamlLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"""^(?:
      [-+]?0b[0-1_]+
    | [-+]?0o[0-7_]+
    | [-+]?0x[0-9a-fA-F_]+
    | [-+]?(?:0|[1-9][0-9_]*))$""", re.X), list("-+0123456789"))


def load_yaml(text: str) -> Any:
    """Parse YAML text with ``YamlLoader`` (safe: plain values only)."""
    return yaml.load(text, Loader=YamlLoader)


# settings that change how a run is shown, never what it computes
_NOT_HASHED = ("progress",)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "synthfer"          # a name of ssfer.data.DATASETS
    root: str | None = None            # dataset folder (ignored for synthfer)
    size: int = 48                     # training resolution (pixels, square)
    channels: int = 1                  # 1 = grey, 3 = RGB
    n_train: int | None = 4000         # synthfer only: train images (None: RAF-DB's 12,271)
    n_test: int | None = 1000          # synthfer only: test images (None: RAF-DB's 3,068)
    difficulty: float = 1.0            # synthfer only: how much faces vary and overlap
    test_split: str = "test"           # split used for the reported test metrics
    val_split: str | None = None       # a split of the data set for validation metrics (e.g. FERPlus "val");
                                       # None: split.val_per_class images carved from train, if any
    tone: str = "none"                 # per-image tone rule, every split alike (ssfer.data.preprocess.TONES)
    options: dict = field(default_factory=dict)  # loader options (e.g. ferplus source)


@dataclass(frozen=True)
class SplitConfig:
    protocol: Literal["per_class", "adacm_rafdb", "fraction", "all"] = "per_class"
    n_per_class: int = 10              # per_class: labels per class
    total: int = 4000                  # adacm_rafdb: a row of Ada-CM's RAF-DB table (100/400/1000/2000/4000)
    fraction: float = 0.1              # fraction: share of the train split that is labeled
    val_per_class: int = 0             # validation images per class carved from train
    seed: int = 0


@dataclass(frozen=True)
class ModelConfig:
    name: str = "resnet18"             # any timm CNN
    stem: str = "imagenet"             # ssfer.model.STEMS; small*: a stride-1 3x3 stem (timm ResNets)
    timm_args: dict = field(default_factory=dict)  # extra timm.create_model arguments, e.g. {channels: [32, 64, 128, 256]}
    attention: str = "spatial"         # ssfer.model.ATTENTIONS
    feature_dropout: str = "block"     # ssfer.model.FEATURE_DROPOUTS
    drop_prob: float = 0.1
    pretrained_path: str | None = None  # local checkpoint, never downloaded


@dataclass(frozen=True)
class AlgoConfig:
    name: str = "fixmatch"             # a recipe of ssfer.algo.compose.RECIPES, or "custom": the parts below
    threshold: str | None = None       # override the algorithm's threshold rule (ssfer.algo.THRESHOLDS, or "none")
    negatives: str | None = None       # override the algorithm's negative selector (ssfer.algo.NEGATIVES)
    threshold_args: dict = field(default_factory=dict)
    negatives_args: dict = field(default_factory=dict)
    lambda_u: float = 1.0              # weight of the pseudo-label loss
    lambda_n: float = 1.0              # weight of the negative-learning loss
    student_view: Literal["strong", "weak"] = "strong"
    # where pseudo labels come from: the EMA teacher on the weak view (the seed
    # paper's design), or the student's own weak-view prediction in the same
    # forward pass, as FixMatch, FlexMatch and FreeMatch are published (USB)
    pseudo_labels: Literal["teacher", "student"] = "teacher"


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 300
    batch_size: int = 32               # labeled images per step
    mu: int = 3                        # unlabeled images per labeled image
    labeled_sampling: Literal["balanced", "uniform"] = "balanced"  # balanced: every class equally likely per draw
    label_smoothing: float = 0.0       # of the labeled cross-entropy
    eval_flip: bool = False            # evaluate on each image and its mirror (mean of the two softmaxes)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.03
    # every parameter but the classifier head trains at lr x this: below 1, a
    # pretrained start (model.pretrained_path) keeps more of what it learned
    backbone_lr_scale: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_steps: int = 0
    ema_decay: float = 0.999
    ema_warmup: bool = True            # timm's decay warm-up, so short runs get a useful teacher
    clip_grad: float = 5.0             # 0 disables clipping
    log_every: int = 10                # host syncs only on this cadence
    eval_every: int = 100              # 0: evaluate only at the end
    ckpt_every: int = 0                # 0: no intermediate checkpoints
    device: str = "auto"               # auto | cpu | cuda | cuda:N
    amp: bool = True                   # bf16 autocast on CUDA
    channels_last: bool = True         # NHWC memory: faster convolutions on CUDA and on the CPU
    compile: bool = False              # torch.compile the student
    threads: int = 0                   # CPU threads for torch (0: leave as is)
    seed: int = 0
    progress: bool = True              # tqdm bar


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # ---- construction -------------------------------------------------
    @classmethod
    def default(cls) -> "Config":
        return cls()

    @classmethod
    def from_dict(cls, d: dict | None) -> "Config":
        cfg = _build(cls, d or {}, "")
        validate(cfg)
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Config":
        return from_yaml_file(cls, path)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def with_overrides(self, overrides: dict[str, Any] | list[str]) -> "Config":
        """Apply dotted overrides, ``{"train.steps": 10}`` or ``["train.steps=10"]``."""
        if isinstance(overrides, list):
            overrides = parse_assignments(overrides)
        d = self.to_dict()
        for key, value in overrides.items():
            parts = key.split(".")
            node = d
            for p in parts[:-1]:
                if not isinstance(node, dict) or p not in node:
                    raise ConfigError(f"unknown config key {key!r}")
                node = node[p]
            if not isinstance(node, dict) or (parts[-1] not in node and not _is_free_dict(parts)):
                raise ConfigError(f"unknown config key {key!r}")
            node[parts[-1]] = value
        return Config.from_dict(d)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def hash(self) -> str:
        """Stable hash of the full config (the run cache key's main part)."""
        d = self.to_dict()
        for key in _NOT_HASHED:
            d["train"].pop(key)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def _is_free_dict(parts: list[str]) -> bool:
    # keys inside free-form option dicts (e.g. algo.threshold_args.tau) may be new
    return len(parts) >= 3


def read_config_file(path: str | Path) -> dict:
    """A config file's sections as a mapping: every way the file can be wrong
    (unreadable, not text, a key given twice, not YAML, not a mapping) is a
    ``ConfigError`` naming the file and, where there is one, the line."""
    path = Path(path)
    try:
        d = load_yaml(path.read_text()) or {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text file ({e.reason} at byte {e.start})") from e
    except DuplicateKey as e:
        raise ConfigError(f"{path}:{e.line}: key {e.key!r} is given twice (first on line {e.first}); "
                          "keep one") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(d).__name__}")
    return d


def from_yaml_file(cls: Any, path: str | Path) -> Any:
    """``cls.from_dict`` of a config file (``read_config_file``), its errors
    prefixed with the file: the one reader of every kind of config."""
    d = read_config_file(path)
    try:
        return cls.from_dict(d)
    except ConfigError as e:
        raise ConfigError(f"{Path(path)}: {e}") from e


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1,2]"]`` -> ``{"a.b": 1, "c": [1, 2]}``; values parsed as YAML."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        try:
            out[key.strip()] = load_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {e}") from e
    return out


def _build(cls, d: Any, prefix: str):
    if not isinstance(d, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {d!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(prefix + k for k in unknown)}"
                          f" (known in {prefix.rstrip('.') or 'config'}: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in d.items():
        tp = hints[name]
        key = prefix + name
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, key + ".")
        else:
            kwargs[name] = _coerce(value, tp, key)
    return cls(**kwargs)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    # strings are read as numbers where a number is declared: a notebook
    # parameter or an environment value arrives as text
    try:
        return typecheck.check(value, tp, parse_strings=True)
    except typecheck.Mismatch as e:
        raise ConfigError(f"{key}: expected {e.expected}, got {value!r}") from None


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {msg}")


def validate(cfg: Config) -> None:
    """Ranges and cross-field rules; types were checked while building."""
    d, s, m, a, t = cfg.data, cfg.split, cfg.model, cfg.algo, cfg.train
    for key, (what, known) in _named_fields().items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        _check(value is None or value in known, key, f"unknown {what} {value!r}; known: {list(known)}")
    _check(d.dataset == "synthfer" or d.root, "data.root", f"needed for dataset {d.dataset!r}")
    _check(16 <= d.size <= 512, "data.size", f"must be in 16..512, got {d.size}")
    _check(d.channels in (1, 3), "data.channels", f"must be 1 or 3, got {d.channels}")
    for k in ("n_train", "n_test"):
        v = getattr(d, k)
        _check(v is None or v > 0, f"data.{k}", f"must be positive, got {v}")
    _check(d.difficulty >= 0, "data.difficulty", f"must be >= 0, got {d.difficulty}")
    _check(s.n_per_class > 0, "split.n_per_class", f"must be positive, got {s.n_per_class}")
    _check(s.total > 0, "split.total", f"must be positive, got {s.total}")
    _check(0 < s.fraction <= 1, "split.fraction", f"must be in (0, 1], got {s.fraction}")
    _check(s.val_per_class >= 0, "split.val_per_class", f"must be >= 0, got {s.val_per_class}")
    _check(not (d.val_split and s.val_per_class), "data.val_split",
           "give data.val_split or split.val_per_class, not both")
    _check(d.val_split != d.test_split, "data.val_split", f"must differ from data.test_split ({d.test_split!r})")
    _check(0 <= m.drop_prob < 1, "model.drop_prob", f"must be in [0, 1), got {m.drop_prob}")
    _check_model_name(m.name)
    for k, v in a.threshold_args.items():
        if k.startswith("tau") and isinstance(v, (int, float)):
            _check(0 <= v <= 1, f"algo.threshold_args.{k}", f"a threshold must be in [0, 1], got {v}")
    _check_algorithm_parts(a)
    _check(a.negatives_args.get("kappa_neg") is None or (m.feature_dropout != "none" and m.drop_prob > 0),
           "algo.negatives_args.kappa_neg", "the MC-dropout spread needs model.feature_dropout other than 'none' "
           f"and model.drop_prob > 0 (got {m.feature_dropout!r}, {m.drop_prob})")
    _check(a.pseudo_labels == "teacher" or a.negatives_args.get("kappa_neg") is None, "algo.pseudo_labels",
           "the MC-dropout spread (algo.negatives_args.kappa_neg) is taken from the EMA teacher; "
           "with pseudo_labels 'student' it would change the student's batch-norm statistics")
    _check(a.lambda_u >= 0, "algo.lambda_u", f"must be >= 0, got {a.lambda_u}")
    _check(a.lambda_n >= 0, "algo.lambda_n", f"must be >= 0, got {a.lambda_n}")
    _check(t.steps > 0, "train.steps", f"must be positive, got {t.steps}")
    _check(t.batch_size > 0, "train.batch_size", f"must be positive, got {t.batch_size}")
    _check(t.mu >= 1, "train.mu", f"must be >= 1, got {t.mu}")
    _check(t.lr > 0, "train.lr", f"must be positive, got {t.lr}")
    _check(0 < t.backbone_lr_scale <= 1, "train.backbone_lr_scale",
           f"must be in (0, 1] (a fraction of train.lr), got {t.backbone_lr_scale}")
    _check(0 <= t.momentum < 1, "train.momentum", f"must be in [0, 1), got {t.momentum}")
    _check(t.weight_decay >= 0, "train.weight_decay", f"must be >= 0, got {t.weight_decay}")
    _check(0 <= t.warmup_steps < t.steps, "train.warmup_steps", "must be in [0, steps)")
    _check(0 <= t.ema_decay < 1, "train.ema_decay", f"must be in [0, 1), got {t.ema_decay}")
    _check(t.clip_grad >= 0, "train.clip_grad", f"must be >= 0, got {t.clip_grad}")
    _check(0 <= t.label_smoothing < 1, "train.label_smoothing", f"must be in [0, 1), got {t.label_smoothing}")
    for k in ("log_every", "eval_every", "ckpt_every", "threads"):
        _check(getattr(t, k) >= 0, f"train.{k}", "must be >= 0")
    _check(t.log_every > 0, "train.log_every", "must be positive")
    _check(t.device == "auto" or t.device == "cpu" or t.device.startswith("cuda"),
           "train.device", f"must be auto, cpu or cuda[:N], got {t.device!r}")


def _named_fields() -> dict[str, tuple[str, tuple[str, ...]]]:
    """The fields whose value names a part, with what the part is called and the
    names known now, read from the registry that holds the parts: a part added to
    its registry is a valid value at once.

    Imported here, not at the top: the registries bring in torch and timm, which
    reading or writing a config file does not need."""
    from ssfer.algo.compose import algorithms
    from ssfer.algo.negatives import NEGATIVES
    from ssfer.algo.thresholds import THRESHOLDS
    from ssfer.data import DATASETS
    from ssfer.data.preprocess import TONES
    from ssfer.model import ATTENTIONS, FEATURE_DROPOUTS, STEMS

    return {
        "data.dataset": ("dataset", tuple(DATASETS)),
        "data.tone": ("tone rule", TONES),
        "model.stem": ("stem", STEMS),
        "model.attention": ("attention", ATTENTIONS),
        "model.feature_dropout": ("feature dropout", FEATURE_DROPOUTS),
        "algo.name": ("algorithm", algorithms()),
        "algo.threshold": ("threshold rule", ("none", *THRESHOLDS)),
        "algo.negatives": ("negative selector", tuple(NEGATIVES)),
    }


def _check_model_name(name: str) -> None:
    """timm's registry knows ``name``: a typo is named here, with the names nearest
    to it, before any data set is decoded. A ``hf-hub:`` or ``local-dir:`` name is
    timm's to resolve when the model is built."""
    import timm
    from timm.models import parse_model_name

    try:
        source, _ = parse_model_name(name)
    except ValueError:  # an unknown "source:" prefix
        source = None
    if source or timm.is_model(name):
        return
    near = difflib.get_close_matches(name, timm.list_models(), n=4, cutoff=0.6)
    raise ConfigError(f"model.name: timm has no model {name!r}; "
                      + (f"nearest: {', '.join(near)}" if near else "timm.list_models() lists the names it has"))


def _check_algorithm_parts(a: AlgoConfig) -> None:
    """Build the threshold rule and selector once on a toy size, so an unknown or
    bad option is reported here, naming its key, before any data is loaded."""
    from ssfer.algo.compose import recipe_for
    from ssfer.algo.negatives import build_negatives
    from ssfer.algo.thresholds import build_threshold

    r = recipe_for(a)
    if r.threshold == "none":
        _check(not a.threshold_args, "algo.threshold_args", f"algorithm {a.name!r} uses no threshold rule")
    else:
        try:
            build_threshold(r.threshold, 7, 1, **a.threshold_args)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"algo.threshold_args: {e}") from e
    try:
        build_negatives(r.negatives, **a.negatives_args)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"algo.negatives_args: {e}") from e
