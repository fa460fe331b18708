"""Structured logging: every record carries the device, campaign and experiment in force.

Context is set with ``log_context(...)`` (a context manager over contextvars, so it
follows asyncio tasks) and added to each record by a filter; the text format prints it
as ``key=value`` pairs, the JSON format as fields.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

CONTEXT_FIELDS = ("device", "campaign_id", "experiment_id")
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "robochem_log_context",
    default={},  # noqa: B039 - never mutated, only replaced
)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields (device=, campaign_id=, experiment_id=) to every record logged inside."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get())


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _context.get()
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, ctx.get(name))
        return True


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = self.formatTime(record)
        base = f"{when} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = " ".join(
            f"{name}={getattr(record, name)}"
            for name in CONTEXT_FIELDS
            if getattr(record, name, None) is not None
        )
        text = f"{base} [{extras}]" if extras else base
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


_HANDLER_NAME = "robochem-console"


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Install one console handler on the ``robochem`` logger (idempotent).

    ``level``/``fmt`` default to settings (ROBOCHEM_LOG_LEVEL, ROBOCHEM_LOG_FORMAT).
    """
    if level is None or fmt is None:
        from robochem.settings import get_settings

        settings = get_settings()
        level = level or settings.log_level
        fmt = fmt or settings.log_format
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING or ERROR")
    logger = logging.getLogger("robochem")
    logger.setLevel(numeric)
    for handler in list(logger.handlers):
        if handler.get_name() == _HANDLER_NAME:
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
