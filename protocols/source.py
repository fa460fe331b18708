"""YAML with positions: plain data plus a map from each field path to its line and column.

pyyaml's ``compose`` keeps a mark on every node; walking the nodes ourselves (instead of
``safe_load``) lets us remember where each key and value sits, and catch duplicate keys,
which ``safe_load`` silently resolves by keeping the last one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Issue, ProtocolError

__all__ = ["Position", "Source", "did_you_mean", "parse_yaml"]

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


def parse_yaml(text: str, file: str) -> Source:
    """Parse one YAML document; raise :class:`ProtocolError` on syntax errors or duplicates."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
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
    source = Source(file, None)
    if node is None:
        raise ProtocolError([Issue(file, 1, 1, "", "the file is empty; expected a mapping")])
    issues: list[Issue] = []
    source.data = _walk(node, (), source, issues, loader)
    source.positions[()] = Position(1, 1, node.start_mark.line + 1, node.start_mark.column + 1)
    if issues:
        raise ProtocolError(issues)
    if not isinstance(source.data, dict):
        raise ProtocolError(
            [Issue(file, 1, 1, "", "the file must be a mapping of sections (key: value)")]
        )
    return source


def _walk(
    node: yaml.Node, path: Path, source: Source, issues: list[Issue], loader: yaml.SafeLoader
) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        first_seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key_line, key_col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                issues.append(
                    Issue(
                        source.file,
                        key_line,
                        key_col,
                        dotted(path),
                        "merge keys ('<<') are not supported; write the fields out",
                    )
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                issues.append(
                    Issue(
                        source.file,
                        key_line,
                        key_col,
                        dotted(path),
                        "a key must be a plain name, not a list or mapping",
                    )
                )
                continue
            key = loader.construct_object(key_node)
            if not isinstance(key, str):
                key = str(key)  # YAML reads `1:` as an int and `yes:` as a bool; names are text
            if key in first_seen:
                issues.append(
                    Issue(
                        source.file,
                        key_line,
                        key_col,
                        dotted((*path, key)),
                        f"duplicate key {key!r} (first given at line {first_seen[key]}); "
                        "YAML would silently keep only the last one",
                    )
                )
                continue
            first_seen[key] = key_line
            child = (*path, key)
            source.positions[child] = Position(
                key_line,
                key_col,
                value_node.start_mark.line + 1,
                value_node.start_mark.column + 1,
            )
            out[key] = _walk(value_node, child, source, issues, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            child = (*path, i)
            line, col = item.start_mark.line + 1, item.start_mark.column + 1
            source.positions[child] = Position(line, col, line, col)
            items.append(_walk(item, child, source, issues, loader))
        return items
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark or node.start_mark
        issues.append(
            Issue(
                source.file,
                mark.line + 1,
                mark.column + 1,
                dotted(path),
                f"cannot read this value: {exc.problem}",
            )
        )
        return None
