"""Errors of protocol and platform files: every one names file, line, column and field."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Issue", "ProtocolError"]


@dataclass(frozen=True)
class Issue:
    """One problem in a file. ``line``/``column`` are 1-based; ``path`` is ``a.b.0.c``."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ProtocolError(ValueError):
    """A protocol or platform file that cannot be used; ``issues`` lists every problem found."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))
