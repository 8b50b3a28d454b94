"""Errors the user can act on, as opposed to bugs.

Every exception here (and ``ssfer.data.DataError``, which derives from
``SsferError``) carries a message that names its culprit: the file, the line,
the key or the step. The ``ssfer`` command prints such an error as one line and
exits non-zero; anything else is a bug and keeps its traceback. ``ssfer
--debug`` shows the traceback for these too.
"""
from __future__ import annotations


class SsferError(Exception):
    """Base of the errors a user can fix; ``kind`` heads the command's one-line report."""

    kind = "error"
    exit_code = 1  # what the ``ssfer`` command exits with


class ConfigError(SsferError, ValueError):
    """A configuration value is unknown, ill-typed or out of range."""

    kind = "config error"
    exit_code = 2


class CheckpointError(SsferError):
    """A checkpoint or weights file that cannot or must not be loaded."""

    kind = "checkpoint error"


class RunFolderError(SsferError):
    """A run folder that is missing, unfinished or damaged (no ``summary.json``,
    no ``model.pt``, a file that does not parse); the message names the folder and
    the file."""

    kind = "run folder error"


class NonFiniteLoss(SsferError, FloatingPointError):
    """A training loss became NaN or infinite; the run stopped."""

    kind = "training stopped"


class WriteError(SsferError, OSError):
    """A run folder could not be written (read-only, full disk, ...); still an
    ``OSError``, for callers that catch those."""

    kind = "write error"

    def __str__(self) -> str:  # OSError's own str would show "[Errno 28] ..." and the args tuple
        return str(self.args[0]) if self.args else super().__str__()


class DiskFull(WriteError):
    """No room on a disk for a file of known size: ``needed`` and ``free`` bytes."""

    def __init__(self, message: str, needed: int = 0, free: int | None = None):
        super().__init__(message)
        self.needed, self.free = needed, free


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped the work; the message says what was kept and how to go on.

    A ``KeyboardInterrupt``, not an ``SsferError``: code that catches
    ``Exception`` (a task runner, a retry loop) must never swallow a Ctrl-C."""

    kind = "interrupted"
    exit_code = 130  # 128 + SIGINT, as a shell reports a process stopped by it
