"""Loading protocol and platform files: YAML -> positions -> pydantic -> checks.

Every problem becomes an :class:`~robochem.protocols.errors.Issue` printed as
``FILE:LINE:COLUMN: field.path: what was given, what is allowed``; all of a file's problems
are collected and raised together as one :class:`ProtocolError`.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import Issue, ProtocolError
from .model import PROTOCOL_VERSION, Protocol
from .platform import PLATFORM_VERSION, Platform
from .source import Source, did_you_mean, has_child, parse_yaml, read_text, yaml_data

M = typing.TypeVar("M", bound=BaseModel)

__all__ = [
    "load_platform",
    "load_protocol",
    "parse_platform",
    "parse_protocol",
    "validation_issues",
    "yaml_data",
]


def load_platform(path: str | Path) -> Platform:
    """Read and check a platform file; raise :class:`ProtocolError` listing every problem."""
    return parse_platform(read_text(path), str(path))


def parse_platform(text: str, file: str = "<platform>") -> Platform:
    source = parse_yaml(text, file)
    platform = _build(Platform, source, "platform", PLATFORM_VERSION)
    from .checks import check_platform

    issues = check_platform(platform, source)
    if issues:
        raise ProtocolError(issues)
    return platform


def load_protocol(path: str | Path, platform: Platform | None = None) -> Protocol:
    """Read and check a protocol file, against ``platform`` when given."""
    return parse_protocol(read_text(path), str(path), platform)


def parse_protocol(
    text: str, file: str = "<protocol>", platform: Platform | None = None
) -> Protocol:
    source = parse_yaml(text, file)
    protocol = _build(Protocol, source, "protocol", PROTOCOL_VERSION)
    from .checks import check_against_platform, check_protocol

    issues = check_protocol(protocol, source)
    if not issues and platform is not None:
        issues = check_against_platform(protocol, platform, source)
    if issues:
        raise ProtocolError(issues)
    return protocol


def _build(model: type[M], source: Source, what: str, version: int) -> M:
    data = source.data
    other = "platform" if what == "protocol" else "protocol"
    if "robochem" not in data:
        hint = ""
        if what == "protocol" and "devices" in data:
            hint = " (this looks like a platform file: pass it with --platform)"
        raise ProtocolError(
            [
                source.issue(
                    (),
                    f"missing the file format version: add 'robochem: {version}' "
                    f"as the first line of a {what} file{hint}",
                )
            ]
        )
    if data["robochem"] != version:
        raise ProtocolError(
            [
                source.issue(
                    ("robochem",),
                    f"{data['robochem']!r} is not a known {what} file "
                    f"version; this robochem reads version {version}",
                )
            ]
        )
    if what == "protocol" and "devices" in data and "stocks" not in data:
        raise ProtocolError([source.issue((), f"this is a {other} file, not a {what} file")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(validation_issues(exc, source, model)) from None


# -- pydantic errors -> issues ---------------------------------------------------------------


def validation_issues(exc: ValidationError, source: Source, model: type[BaseModel]) -> list[Issue]:
    """Translate pydantic's errors into positioned issues, with did-you-mean on unknown keys."""
    errors = exc.errors(include_url=False)
    resolved = [(_data_path(source.data, e["loc"]), e) for e in errors]
    suggested: set[tuple[Any, ...]] = set()
    issues: list[Issue] = []
    for path, err in resolved:
        if err["type"] == "extra_forbidden":
            key = path[-1]
            allowed = _allowed_keys(model, source.data, path[:-1])
            guess = did_you_mean(str(key), allowed)
            if guess:
                suggested.add((*path[:-1], guess.split("'")[1]))
            detail = guess or (f"allowed: {', '.join(allowed)}" if allowed else "")
            message = f"unknown key {key!r}" + (f"; {detail}" if detail else "")
            issues.append(source.issue(path, message, at_key=True))
    for path, err in resolved:
        if err["type"] == "extra_forbidden":
            continue
        if err["type"] == "missing" and path in suggested:
            continue  # the misspelt key next to it already says what was meant
        if err["type"] == "union_tag_invalid":
            path = (*path, str((err.get("ctx") or {}).get("discriminator", "")).strip("'"))
        at_key, message = _message(path, err, source)
        issues.append(source.issue(path, message, at_key=at_key))
    unique = list(dict.fromkeys(issues))
    return sorted(unique, key=lambda i: (i.line, i.column))


def _data_path(data: Any, loc: Sequence[Any]) -> tuple[Any, ...]:
    """The loc's path in the data, dropping pydantic's own elements (union tags etc.)."""
    path: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        if has_child(node, part):
            path.append(part)
            node = node[part]
        elif i == len(loc) - 1 and isinstance(node, dict) and isinstance(part, str):
            path.append(part)  # a missing key
    return tuple(path)


def _message(path: tuple[Any, ...], err: dict[str, Any], source: Source) -> tuple[bool, str]:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    given = err.get("input")
    if kind == "missing":
        return True, f"missing required key {path[-1]!r}" if path else "missing required key"
    if kind == "value_error":
        msg = str(ctx.get("error", err["msg"]))
        return False, msg
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        return False, _not_allowed(given, expected, "expected ")
    if kind == "union_tag_invalid":
        expected = str(ctx.get("expected_tags", ""))
        tag = ctx.get("tag")
        return False, _not_allowed(tag, expected, "expected one of ")
    if kind == "union_tag_not_found":
        tag_key = str(ctx.get("discriminator", "")).strip("'")
        tags = _TAGS.get(tag_key)
        known = f" ({', '.join(tags)})" if tags else ""
        return True, f"missing {tag_key!r}, which says what kind of entry this is{known}"
    if kind == "too_short":
        if isinstance(given, dict):
            return False, "is empty; give at least one entry"
        return False, f"{given!r} is empty; give at least {ctx.get('min_length', 1)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return False, f"expected a mapping (key: value), got {_kind_of(given)}"
    if kind in ("list_type", "tuple_type"):
        return False, f"expected a list, got {_kind_of(given)}"
    msg = err["msg"]
    msg = msg[0].lower() + msg[1:] if msg else msg
    return False, f"got {given!r}; {msg}"


#: the values of each discriminator, for "missing 'type'" messages
_TAGS = {
    "type": (
        "residence_time", "light", "temperature", "concentration", "equivalents", "loading",
        "categorical",
    ),
    "mode": ("steady-state", "slug"),
}  # fmt: skip


def _not_allowed(given: Any, expected: str, lead: str) -> str:
    """The message for a value outside a list, with a did-you-mean when one is close."""
    options = re.findall(r"'([^']*)'", expected)
    guess = did_you_mean(str(given), options) if isinstance(given, str) else ""
    if guess:
        return f"{given!r} is not allowed; {guess} ({lead}{expected})"
    return f"{given!r} is not allowed; {lead}{expected}"


def _kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"text {value!r}"
    return f"{type(value).__name__} {value!r}"


def _allowed_keys(model: type[BaseModel], data: Any, path: Sequence[Any]) -> list[str]:
    """Field names of the model found at ``path`` (following dicts, lists and unions)."""
    node: Any = model
    value = data
    for part in path:
        node = _model_for(node, value)
        value = (
            value.get(part)
            if isinstance(value, dict)
            else (value[part] if isinstance(value, list) and isinstance(part, int) else None)
        )
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return []
            node = field.annotation
        else:
            node = _element_type(node)
            if node is None:
                return []
    node = _model_for(node, value)
    if isinstance(node, type) and issubclass(node, BaseModel):
        return [name for name in node.model_fields]
    return []


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _model_for(tp: Any, value: Any) -> Any:
    """Resolve Optional/unions to the member that fits ``value`` (by its ``type``/``mode``)."""
    tp = _strip(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        members = [_strip(a) for a in typing.get_args(tp) if a is not type(None)]
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        if len(models) == 1 and len(members) == 1:
            return models[0]
        if isinstance(value, dict):
            for m in models:
                for tag in ("type", "mode"):
                    f = m.model_fields.get(tag)
                    if f is not None and value.get(tag) in typing.get_args(f.annotation):
                        return m
        return models[0] if len(models) == 1 else (members[0] if len(members) == 1 else tp)
    return tp


def _element_type(tp: Any) -> Any:
    tp = _strip(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is dict and len(args) == 2:
        return args[1]
    if origin in (list, tuple) and args:
        return args[0]
    return None
