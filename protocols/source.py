"""YAML with positions: plain data plus a map from each field path to its line and column.

This is robochem's one door for YAML: protocol and platform files, analysis blocks, stored
protocol text and API bodies all come through :func:`read_text` (files) and
:func:`parse_yaml` / :func:`yaml_data` (text). pyyaml's ``compose`` keeps a mark on every
node; walking the nodes ourselves (instead of ``safe_load``) lets us remember where each key
and value sits, and catch duplicate keys, which ``safe_load`` silently resolves by keeping
the last one.

Input may be hostile (the dashboard takes protocols from the network), so before anything
is built the door refuses, each as one ``FILE:LINE:COL: message`` issue:

- more than ``max_yaml_bytes`` (a setting, 1 MB by default): a file is refused on its size
  before it is read, text before it is parsed;
- characters YAML does not allow (C0/C1 control characters, lone surrogates) and files that
  are not UTF-8, at the first offending character;
- aliases (``*name``): robochem's files never need them, and refusing them outright is
  simpler and safer than an expansion budget (a 300-byte "billion laughs" file expands to
  gigabytes);
- lists and mappings nested deeper than :data:`MAX_DEPTH` (pyyaml's composer recurses, so
  5,000 levels would raise RecursionError);
- tags other than YAML's own scalar types (``!foo``, ``!!python/object``, ``!!set``, ...).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

import yaml

from .errors import Issue, ProtocolError

__all__ = [
    "MAX_DEPTH",
    "Position",
    "Source",
    "did_you_mean",
    "max_yaml_bytes",
    "parse_yaml",
    "read_text",
    "yaml_data",
]

#: Deepest nesting of lists and mappings accepted; robochem's own files use about five.
MAX_DEPTH = 32

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    """1-based line/column of a field's key (where it is named) and of its value."""

    key_line: int
    key_column: int
    line: int
    column: int


@dataclass
class Source:
    """A parsed file: its data and where every field came from."""

    file: str
    data: Any
    positions: dict[Path, Position] = field(default_factory=dict)

    def locate(self, path: Sequence[str | int], *, at_key: bool = False) -> tuple[int, int]:
        """Line and column of ``path``; of its nearest existing ancestor when it is missing.

        ``at_key`` points at the key (unknown or duplicate keys) rather than the value. A
        missing field is reported at the key of the mapping that lacks it.
        """
        path = tuple(path)
        if path in self.positions:
            pos = self.positions[path]
            return (pos.key_line, pos.key_column) if at_key else (pos.line, pos.column)
        for n in range(len(path) - 1, -1, -1):
            pos = self.positions.get(path[:n])
            if pos is not None:
                return pos.key_line, pos.key_column
        return 1, 1

    def issue(self, path: Sequence[str | int], message: str, *, at_key: bool = False) -> Issue:
        line, column = self.locate(path, at_key=at_key)
        return Issue(self.file, line, column, dotted(path), message)

    def get(self, path: Sequence[str | int], default: Any = None) -> Any:
        node = self.data
        for part in path:
            if not has_child(node, part):
                return default
            node = node[part]
        return node


def has_child(node: Any, part: Any) -> bool:
    """Whether ``node[part]`` exists in parsed YAML (a mapping key or a list index)."""
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def dotted(path: Iterable[str | int]) -> str:
    return ".".join(str(p) for p in path)


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or ``""``."""
    match = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else ""


def max_yaml_bytes() -> int:
    """The size limit in force (the ``max_yaml_bytes`` setting)."""
    from robochem.settings import get_settings

    return get_settings().max_yaml_bytes


def read_text(path: str | FilePath, *, max_bytes: int | None = None) -> str:
    """A file's text, refused (as one issue) when too large, unreadable or not UTF-8.

    The size is checked on the open file before reading, and the read itself stops one byte
    past the limit, so neither a 30 MB file nor an endless one (a pipe, ``/dev/zero``) is
    ever held in memory.
    """
    file = str(path)
    limit = max_bytes if max_bytes is not None else max_yaml_bytes()
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise ProtocolError([Issue(file, 1, 1, "", _too_large(size, limit))])
            data = handle.read(limit + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ProtocolError([Issue(file, 1, 1, "", f"cannot read the file: {reason}")]) from None
    if len(data) > limit:
        raise ProtocolError([Issue(file, 1, 1, "", _too_large(None, limit))])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[start : exc.start].decode("utf-8", "replace")) + 1
        message = (
            f"this is not UTF-8 text (byte 0x{data[exc.start]:02x} {exc.reason}); "
            "save the file as UTF-8"
        )
        raise ProtocolError([Issue(file, line, column, "", message)]) from None


def parse_yaml(text: str, file: str, *, max_bytes: int | None = None) -> Source:
    """Parse one YAML document that must be a mapping; raise :class:`ProtocolError` on
    syntax errors, duplicates and everything the door refuses (see the module doc)."""
    node, loader = _compose(text, file, max_bytes)
    if node is None:
        raise ProtocolError([Issue(file, 1, 1, "", "the file is empty; expected a mapping")])
    source = Source(file, None)
    source.data = _Walk(source, loader).walk(node)
    source.positions[()] = Position(1, 1, node.start_mark.line + 1, node.start_mark.column + 1)
    if not isinstance(source.data, dict):
        raise ProtocolError(
            [Issue(file, 1, 1, "", "the file must be a mapping of sections (key: value)")]
        )
    return source


def yaml_data(text: str, file: str = "<text>", *, max_bytes: int | None = None) -> Any:
    """The plain data of one YAML document of any shape (``None`` when empty), through the
    same door as :func:`parse_yaml`: for readers that want data, not a protocol."""
    node, loader = _compose(text, file, max_bytes)
    return None if node is None else _Walk(Source(file, None), loader).walk(node)


# -- composing: limits before anything is built -----------------------------------------------

#: What YAML accepts in a stream (YAML 1.1 "printable"); pyyaml refuses the rest with a
#: ReaderError that carries no line.
_NOT_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "timestamp")
)
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _AliasNode(yaml.ScalarNode):
    """Stands where an alias was written: nothing is expanded, the walk reports it."""


class _Refused(Exception):
    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """pyyaml's safe loader whose composer expands no alias and stops at MAX_DEPTH."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.get_event()
            return _AliasNode("", event.anchor, event.start_mark, event.end_mark)
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        if self.depth >= MAX_DEPTH:
            message = (
                f"lists and mappings are nested more than {MAX_DEPTH} levels deep; "
                "robochem files need only a few"
            )
            raise _Refused(message, self.peek_event().start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _compose(text: str, file: str, max_bytes: int | None) -> tuple[Any, _Loader | None]:
    """The document's root node (None when empty) and the loader that constructs scalars."""
    limit = max_bytes if max_bytes is not None else max_yaml_bytes()
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise ProtocolError([Issue(file, 1, 1, "", _too_large(size, limit))])
    bad = _NOT_PRINTABLE.search(text)
    if bad is not None:
        line, column = _line_column(text, bad.start())
        raise ProtocolError([Issue(file, line, column, "", _unprintable(bad.group()))])
    loader = _Loader(text)
    try:
        return loader.get_single_node(), loader
    except _Refused as exc:
        line, column = exc.mark.line + 1, exc.mark.column + 1
        raise ProtocolError([Issue(file, line, column, "", exc.message)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "syntax error"
        context = f" ({exc.context})" if exc.context else ""
        raise ProtocolError(
            [Issue(file, line, column, "", f"YAML syntax error: {problem}{context}")]
        ) from None
    except yaml.YAMLError as exc:
        raise ProtocolError([Issue(file, 1, 1, "", f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()


def _too_large(size: int | None, limit: int) -> str:
    given = f"{size:,} bytes" if size is not None else "more"
    return (
        f"the file is {given}, over the limit of {limit:,} bytes (setting max_yaml_bytes); "
        "protocol and platform files are a few kB"
    )


def _unprintable(char: str) -> str:
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        what = "a lone surrogate, which is not a character"
    elif code < 0x20 or 0x7F <= code <= 0x9F:
        what = "a control character"
    else:
        what = "a non-character"
    return f"U+{code:04X} is {what}, which YAML does not allow; remove it"


def _line_column(text: str, index: int) -> tuple[int, int]:
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def _tag_name(tag: str) -> str:
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix) :] if tag.startswith(prefix) else tag


# -- walking: plain data, positions, and what the structure may not hold ---------------------


class _Walk:
    """Turns nodes into plain data, recording positions and collecting issues."""

    def __init__(self, source: Source, loader: _Loader | None) -> None:
        self.source = source
        self.loader = loader
        self.issues: list[Issue] = []
        self.alias: Issue | None = None  # the first alias; the others are only counted
        self.aliases = 0

    def walk(self, node: yaml.Node) -> Any:
        data = self._node(node, ())
        if self.alias is not None:
            more = self.aliases - 1
            message = self.alias.message + (f" ({more} more in this file)" if more else "")
            self.issues.append(dataclasses.replace(self.alias, message=message))
        if self.issues:
            raise ProtocolError(sorted(self.issues, key=lambda i: (i.line, i.column)))
        return data

    def _issue(self, mark: Any, path: Path, message: str) -> None:
        self.issues.append(
            Issue(self.source.file, mark.line + 1, mark.column + 1, dotted(path), message)
        )

    def _refused(self, node: yaml.Node, path: Path) -> bool:
        """Report an alias or a foreign tag on ``node``; True when it was one."""
        if isinstance(node, _AliasNode):
            self.aliases += 1
            if self.alias is None:
                mark = node.start_mark
                message = f"aliases ('*{node.value}') are not supported; write the value out"
                self.alias = Issue(
                    self.source.file, mark.line + 1, mark.column + 1, dotted(path), message
                )
            return True
        if isinstance(node, yaml.MappingNode):
            allowed = node.tag == _MAP_TAG
        elif isinstance(node, yaml.SequenceNode):
            allowed = node.tag == _SEQ_TAG
        else:
            allowed = node.tag in _SCALAR_TAGS
        if not allowed:
            self._issue(
                node.start_mark,
                path,
                f"unknown tag {_tag_name(node.tag)!r}; robochem files are plain YAML, without tags",
            )
        return not allowed

    def _node(self, node: yaml.Node, path: Path) -> Any:
        if self._refused(node, path):
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                child = (*path, i)
                line, col = item.start_mark.line + 1, item.start_mark.column + 1
                self.source.positions[child] = Position(line, col, line, col)
                items.append(self._node(item, child))
            return items
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        assert self.loader is not None
        try:
            return self.loader.construct_object(node, deep=True)
        # pyyaml's scalar constructors raise these for odd values of a valid tag
        # (``!!int abc``, a date 2024-13-45, an integer of 5,000 digits)
        except (yaml.YAMLError, ValueError, TypeError, AttributeError, OverflowError) as exc:
            problem = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else str(exc)
            problem = str(problem).split("; use sys.set_int_max_str_digits")[0]
            text = node.value if len(node.value) <= 40 else node.value[:40] + "..."
            message = f"cannot read {text!r} as {_tag_name(node.tag)} ({problem})"
            self._issue(node.start_mark, path, message)
            return None

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        first_seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key_line, key_col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key_node.tag == _MERGE_TAG:
                self._issue(
                    key_node.start_mark,
                    path,
                    "merge keys ('<<') are not supported; write the fields out",
                )
                continue
            if self._refused(key_node, path):
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._issue(
                    key_node.start_mark, path, "a key must be a plain name, not a list or mapping"
                )
                continue
            key = self._scalar(key_node, path)
            if not isinstance(key, str):
                key = str(key)  # YAML reads `1:` as an int and `yes:` as a bool; names are text
            if key in first_seen:
                self._issue(
                    key_node.start_mark,
                    (*path, key),
                    f"duplicate key {key!r} (first given at line {first_seen[key]}); "
                    "YAML would silently keep only the last one",
                )
                continue
            first_seen[key] = key_line
            child = (*path, key)
            self.source.positions[child] = Position(
                key_line,
                key_col,
                value_node.start_mark.line + 1,
                value_node.start_mark.column + 1,
            )
            out[key] = self._node(value_node, child)
        return out
