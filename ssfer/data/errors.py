"""Errors and the problem sink shared by the loaders and the data check.

Loaders and ``ssfer data check`` walk the same code: a loader stops at the
first error (strict sink), the check collects every problem and goes on.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ssfer.errors import SsferError


class DataError(SsferError, ValueError):
    """A data set on disk is not in the expected form (names the file and row)."""

    kind = "data error"


ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Problem:
    kind: str  # e.g. "missing-file", "malformed-row", "duplicate"
    path: str  # file, or "file:line"
    detail: str
    severity: str = ERROR

    def as_dict(self) -> dict:
        return asdict(self)


class Problems:
    """Collects problems; in strict mode an error raises DataError at once."""

    def __init__(self, strict: bool = True):
        self.strict = strict
        self.items: list[Problem] = []
        self._seen: set[Problem] = set()

    def _add(self, p: Problem) -> None:
        # one label file may serve several splits and be read once per split
        if p not in self._seen:
            self._seen.add(p)
            self.items.append(p)

    def error(self, kind: str, path: str, detail: str) -> None:
        if self.strict:
            raise DataError(f"{path}: {detail}")
        self._add(Problem(kind, path, detail, ERROR))

    def warn(self, kind: str, path: str, detail: str) -> None:
        self._add(Problem(kind, path, detail, WARNING))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.severity == WARNING]
