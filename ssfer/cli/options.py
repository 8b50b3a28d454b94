"""The one KEY=VALUE reader of the command line: ``--set``, ``--option``, ``-o``
and the notebook overrides all read their values as YAML (``8`` an int,
``false`` a bool, ``[1, 2]`` a list, ``{"a": "b"}`` a mapping), through
``ssfer.config.parse_assignments``; a data set loader's options are then checked
against the loader's own signature."""
from __future__ import annotations

import argparse
import typing
from pathlib import Path
from typing import Any


def add_run_flags(p: argparse.ArgumentParser, verb: str, configs: str, example: str) -> None:
    """The flags ``train`` and ``pretrain`` share: the config, its overrides, the run
    cache, and whether to redo (``--force``) or start over (``--restart``)."""
    p.add_argument("--config", type=Path, help=f"YAML config ({configs}); defaults otherwise")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help=f"override, e.g. {example} (VALUE read as YAML)")
    p.add_argument("--cache-dir", type=Path, default=None, help="run cache (default $SSFER_CACHE or ~/.cache/ssfer)")
    p.add_argument("--force", action="store_true", help=f"{verb} even when a cached result exists")
    p.add_argument("--restart", action="store_true",
                   help="discard an interrupted run's checkpoint (e.g. a corrupt one) and start over")


def key_value(text: str) -> tuple[str, Any]:
    """argparse ``type=``: one ``KEY=VALUE`` as ``(key, typed value)``."""
    from ssfer.config import ConfigError, parse_assignments

    try:
        ((key, value),) = parse_assignments([text]).items()
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def key_path(text: str) -> tuple[str, str]:
    """argparse ``type=``: ``DATASET=PATH``, the path kept as typed (a folder named
    ``2024`` or ``yes`` is a path, not a number or a bool)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value:
        raise argparse.ArgumentTypeError(f"expected DATASET=PATH, got {text!r}")
    return key.strip(), value


def loader_options(dataset: str, pairs: list[tuple[str, Any]] | None) -> dict[str, Any]:
    """``--option`` pairs of ``dataset``'s loader as keyword arguments, each name and
    value checked against the loader's signature (``crop: bool``, ``num_classes:
    int``): an unknown name or a value of the wrong type is a ``ConfigError``
    naming the option and what the loader takes."""
    from ssfer import typecheck
    from ssfer.config import ConfigError
    from ssfer.data.registry import FORMATS

    opts = dict(pairs or [])
    fmt = FORMATS.get(str(dataset).strip().lower())
    if fmt is None:   # synthfer and unknown names: the registry's own error names them
        return opts
    hints = typing.get_type_hints(fmt.scan)
    known = fmt.options()
    for name, value in opts.items():
        if name not in known:
            raise ConfigError(f"--option {name}: {fmt.name} has no such option; known: {', '.join(known)}")
        try:
            opts[name] = typecheck.check(value, hints[name]) if name in hints else value
        except typecheck.Mismatch as e:
            raise ConfigError(f"--option {name}={value!r}: {fmt.name} expects {e.expected}") from None
        except typecheck.UnsupportedType:
            pass
    return opts
