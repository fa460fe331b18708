"""The one reader of Spinsolve parameter files (``acqu.par``, ``proc.par``, ``shim.par``).

Lines are ``key = value``; a quoted value is text, otherwise an int or a float when it
reads as one, else the text as written. Blank lines are skipped. Anything else (bytes that
are not UTF-8, a line without ``=``, a missing key) is a corrupt file: :class:`ParFileError`
names the file and the line. Standard library only, so drivers can use it without the
analysis stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["ParFileError", "read_par"]


class ParFileError(ValueError):
    """A parameter file that cannot be read or is not ``key = value`` lines."""

    def __init__(self, path: str | Path, reason: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


def _value(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_par(path: str | Path) -> dict[str, Any]:
    """``{key: value}`` of the parameter file at ``path``; raises :class:`ParFileError`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ParFileError(path, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ParFileError(
            path, f"not a text parameter file (byte {exc.start}: not UTF-8; corrupt?)", line
        ) from None
    params: dict[str, Any] = {}
    for lineno, original in enumerate(text.splitlines(), start=1):
        line = original.strip()
        if not line:
            continue
        key, sep, value = (part.strip() for part in line.partition("="))
        if not sep:
            raise ParFileError(path, f"not 'key = value': {original[:60]!r}", lineno)
        if not key:
            raise ParFileError(path, f"no key before '=': {original[:60]!r}", lineno)
        params[key] = _value(value)
    return params
