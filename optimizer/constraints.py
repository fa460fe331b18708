"""Known constraints: boolean expressions over variable names, parsed with ``ast``.

Only a small arithmetic language is accepted (numbers, strings, variable names, + - * / ** %,
comparisons including chained ones and ``in``/``not in`` lists, ``and``/``or``/``not`` and a
few functions). Nothing is ever passed to ``eval``: the tree is checked once and then walked
with numpy, one array per variable, so thousands of candidates are checked in one pass.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ConstraintError

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": np.abs,
    "sqrt": np.sqrt,
    "log": np.log,
    "log10": np.log10,
    "exp": np.exp,
    "min": lambda *a: _reduce(np.minimum, a),
    "max": lambda *a: _reduce(np.maximum, a),
}
_CONSTANTS = {"pi": math.pi, "e": math.e}
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.Pow: np.power,
    ast.Mod: np.mod,
}
_CMPOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: lambda a, b: np.asarray(a == b),
    ast.NotEq: lambda a, b: np.asarray(a != b),
}


def _reduce(fn: Callable[[Any, Any], Any], args: tuple[Any, ...]) -> Any:
    if len(args) < 2:
        raise ConstraintError("min()/max() need at least two arguments")
    out = args[0]
    for a in args[1:]:
        out = fn(out, a)
    return out


@dataclass
class Constraint:
    """One parsed constraint. ``evaluate`` returns a boolean array (True = allowed)."""

    expression: str
    name: str
    tree: ast.Expression

    def evaluate(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        with np.errstate(all="ignore"):
            try:
                result = _eval(self.tree.body, columns)
            except (TypeError, ValueError, ZeroDivisionError, OverflowError):
                # e.g. a string compared with a number: nothing satisfies it.
                return np.zeros(n, dtype=bool)
        out = np.asarray(result)
        if out.dtype != bool:
            out = out.astype(bool)
        return np.broadcast_to(out, (n,)).copy()

    def to_spec(self) -> dict[str, str]:
        return {"expression": self.expression, "name": self.name}


def _eval(node: ast.AST, cols: Mapping[str, np.ndarray]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in cols:
            return cols[node.id]
        return _CONSTANTS[node.id]
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_num(_eval(node.left, cols)), _num(_eval(node.right, cols)))
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, cols)
        if isinstance(node.op, ast.Not):
            return np.logical_not(operand)
        if isinstance(node.op, ast.USub):
            return -_num(operand)
        return _num(operand)
    if isinstance(node, ast.BoolOp):
        values = [_eval(v, cols) for v in node.values]
        fn = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        return _reduce(fn, tuple(values))
    if isinstance(node, ast.Compare):
        left = _eval(node.left, cols)
        result: Any = True
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, cols)
            if isinstance(op, ast.In | ast.NotIn):
                members = list(right)
                hit = np.isin(np.asarray(left, dtype=object), np.asarray(members, dtype=object))
                step = hit if isinstance(op, ast.In) else np.logical_not(hit)
            else:
                step = _CMPOPS[type(op)](left, right)
            result = np.logical_and(result, step)
            left = right
        return result
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        return _FUNCTIONS[node.func.id](*[_num(_eval(a, cols)) for a in node.args])
    if isinstance(node, ast.Tuple | ast.List):
        return [_eval(e, cols) for e in node.elts]
    raise ConstraintError(f"unsupported expression node {type(node).__name__}")


def _num(value: Any) -> Any:
    # Categorical columns are object arrays; arithmetic on them is a user error.
    if isinstance(value, np.ndarray) and value.dtype == object:
        return value.astype(float)
    if isinstance(value, str):
        raise TypeError("arithmetic on a string")
    return value


def _check(node: ast.AST, names: set[str], expression: str) -> None:
    """Reject every construct outside the small language, before anything is evaluated."""
    allowed = (
        ast.Expression, ast.Constant, ast.Name, ast.Load, ast.BinOp, ast.UnaryOp, ast.BoolOp,
        ast.Compare, ast.Call, ast.Tuple, ast.List, ast.And, ast.Or, ast.Not, ast.USub,
        ast.UAdd, ast.In, ast.NotIn, *_BINOPS, *_CMPOPS,
    )  # fmt: skip
    for sub in ast.walk(node):
        if not isinstance(sub, allowed):
            raise ConstraintError(
                f"constraint {expression!r}: {type(sub).__name__} is not allowed "
                "(only arithmetic, comparisons, and/or/not and abs/sqrt/log/log10/exp/min/max)"
            )
        if isinstance(sub, ast.Constant) and not isinstance(sub.value, int | float | str):
            raise ConstraintError(f"constraint {expression!r}: constant {sub.value!r} not allowed")
        known = names | set(_CONSTANTS) | set(_FUNCTIONS)
        if isinstance(sub, ast.Name) and sub.id not in known:
            raise ConstraintError(
                f"constraint {expression!r}: unknown name {sub.id!r}; "
                f"variables are {sorted(names)}"
            )
        if isinstance(sub, ast.Call):
            if not isinstance(sub.func, ast.Name) or sub.func.id not in _FUNCTIONS:
                raise ConstraintError(f"constraint {expression!r}: only {sorted(_FUNCTIONS)} "
                                      "may be called")
            if sub.keywords:
                raise ConstraintError(f"constraint {expression!r}: no keyword arguments")
    # A bare function name used as a value (not called) is also a mistake.
    called = {id(s.func) for s in ast.walk(node) if isinstance(s, ast.Call)}
    for sub in ast.walk(node):
        if (isinstance(sub, ast.Name) and sub.id in _FUNCTIONS and id(sub) not in called
                and sub.id not in names):
            raise ConstraintError(f"constraint {expression!r}: {sub.id} must be called")
    body = node.body if isinstance(node, ast.Expression) else node
    if not isinstance(body, ast.Compare | ast.BoolOp) and not (
        isinstance(body, ast.UnaryOp) and isinstance(body.op, ast.Not)
    ):
        raise ConstraintError(
            f"constraint {expression!r} must be a comparison such as 'a + b <= 1'"
        )


def parse_constraint(spec: Any, names: Iterable[str], index: int = 0) -> Constraint:
    if isinstance(spec, str):
        expression, name = spec, f"c{index}"
    elif isinstance(spec, Mapping):
        unknown = set(spec) - {"expression", "name"}
        if unknown or "expression" not in spec:
            raise ConstraintError(
                f"constraint {dict(spec)!r}: expected keys 'expression' and optional 'name'"
            )
        expression, name = spec["expression"], str(spec.get("name", f"c{index}"))
    else:
        raise ConstraintError(f"constraint {spec!r}: expected a string or a mapping")
    if not isinstance(expression, str) or not expression.strip():
        raise ConstraintError("a constraint expression must be a non-empty string")
    if len(expression) > 2000:
        raise ConstraintError("constraint expression too long")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConstraintError(f"constraint {expression!r}: syntax error: {exc.msg}") from None
    _check(tree, set(names), expression)
    return Constraint(expression=expression, name=name, tree=tree)


class ConstraintSet:
    """All known constraints of a spec; ``feasible`` checks many points at once."""

    def __init__(self, specs: Any, names: Iterable[str]) -> None:
        if specs is None:
            specs = []
        if isinstance(specs, str | Mapping) or not isinstance(specs, list | tuple):
            raise ConstraintError("'constraints' must be a list of expressions")
        names = list(names)
        self.constraints = [parse_constraint(s, names, i) for i, s in enumerate(specs)]

    def __len__(self) -> int:
        return len(self.constraints)

    def feasible(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        ok = np.ones(n, dtype=bool)
        for c in self.constraints:
            ok &= c.evaluate(columns, n)
        return ok

    def violated(self, point: Mapping[str, Any]) -> list[str]:
        """Names of the constraints that one native point breaks."""
        cols = {k: np.array([v], dtype=object if isinstance(v, str) else float)
                for k, v in point.items()}
        return [c.name for c in self.constraints if not c.evaluate(cols, 1)[0]]

    def to_spec(self) -> list[dict[str, str]]:
        return [c.to_spec() for c in self.constraints]
