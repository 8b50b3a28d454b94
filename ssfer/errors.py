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


class ConfigError(SsferError, ValueError):
    """A configuration value is unknown, ill-typed or out of range."""

    kind = "config error"


class CheckpointError(SsferError):
    """A checkpoint or weights file that cannot or must not be loaded."""

    kind = "checkpoint error"


class NonFiniteLoss(SsferError, FloatingPointError):
    """A training loss became NaN or infinite; the run stopped."""

    kind = "training stopped"


class WriteError(SsferError, OSError):
    """A run folder could not be written (read-only, full disk, ...); still an
    ``OSError``, for callers that catch those."""

    kind = "write error"

    def __str__(self) -> str:  # OSError's own str would show "[Errno 28] ..." and the args tuple
        return str(self.args[0]) if self.args else super().__str__()
