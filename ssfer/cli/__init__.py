"""The ``ssfer`` command: one module per command (``train``, ``pretrain``, ``eval``,
``bench``, ``results``, ``labs``, ``data``), each with its ``add_cli``; ``reproduce`` comes
from the book's wing and is added only when it is asked for."""
from __future__ import annotations

import argparse
import os
import sys

from ssfer.cli import bench, data, evaluate, labs, pretrain, results, train

COMMANDS = (train, pretrain, evaluate, bench, results, labs, data)


TOOLING, TOOLING_HELP = "reproduce", "re-run the book's notebooks with a profile and build it (needs the book extra)"
DEBUG_HELP = "show the traceback of expected errors (config, data, checkpoint, loss, run folder) too"


def build_parser(tooling: bool = False) -> argparse.ArgumentParser:
    """The ``ssfer`` parser. The notebook tooling's command is listed, but its
    arguments come from ``ssfer.book.reproduce``, which needs the book extra
    (nbformat, papermill): they are added only with ``tooling``, which ``main``
    asks for when that command is given, so that a base install trains."""
    p = argparse.ArgumentParser(prog="ssfer", description=__doc__)
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = p.add_subparsers(dest="command", required=True)

    for command in COMMANDS:
        command.add_cli(sub)
    if tooling:
        from ssfer.book import reproduce

        reproduce.add_cli(sub)
    else:
        sub.add_parser(TOOLING, help=TOOLING_HELP, add_help=False)
    # --debug also after the command; SUPPRESS keeps the command's default from
    # overwriting a --debug given before it
    _debug_everywhere(sub)
    return p


def _debug_everywhere(sub) -> None:
    """``--debug`` after any command or sub-command too (``ssfer results family --debug``)."""
    for command in sub.choices.values():
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                _debug_everywhere(action)


def _who() -> str:
    # under torchrun every rank reports: the launcher stops the other ranks as soon
    # as one exits, so a rank left to print for all may be killed before it does
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"ssfer (rank {os.environ.get('RANK', '?')})"
    return "ssfer"


def _leave_process_group() -> None:
    # under torchrun a rank that stops on an error must still leave the group
    # cleanly, or its exit turns into a hang or a teardown warning
    if "torch" not in sys.modules:
        return
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


INTERRUPTED = "stopped by Ctrl-C; every file is written whole or not at all, so nothing half-written was left"


def main(argv: list[str] | None = None) -> int:
    """Expected errors (``ssfer.errors.SsferError``: config, data, checkpoint,
    non-finite loss, run folder, unwritable file) end in one line on stderr and a
    non-zero exit, on every torchrun rank; ``--debug`` shows their traceback.
    Ctrl-C ends in one line too (what was kept, how to go on) and exit 130.
    Anything else is a bug and keeps its traceback."""
    from ssfer.errors import SsferError

    argv = results.old_spelling(list(sys.argv[1:] if argv is None else argv))
    command, _ = build_parser().parse_known_args(argv)
    try:
        parser = build_parser(tooling=command.command == TOOLING)
    except ImportError as e:
        print(f"ssfer: ssfer {TOOLING} needs the book extra (pip install 'ssfer[book]'): {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (SsferError, KeyboardInterrupt) as e:
        if getattr(args, "debug", False):
            raise
        # a plain KeyboardInterrupt says nothing; the trainer's Interrupted says what was kept
        kind, text = getattr(e, "kind", "interrupted"), str(e) or INTERRUPTED
        print(f"{_who()}: {kind}: {' '.join(text.split())}", file=sys.stderr)
        return getattr(e, "exit_code", 130)
    finally:
        _leave_process_group()

