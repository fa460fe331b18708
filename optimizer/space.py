"""Search space: spec parsing, sampling and encoding for the surrogate.

Points are handled in three forms:
- native: ``dict`` of variable name -> value (what users and the engine see);
- unit (``Z``): one float column per variable, numeric variables in [0, 1] (after the log
  transform when asked), categorical variables as the index of the choice. Searching the
  acquisition happens here because perturbing a point is trivial in this form;
- encoded (``X``): what the GP sees, numeric columns as in ``Z`` and categorical columns
  one-hot, or min-max normalised descriptor vectors when the spec provides them (given as
  numbers, or computed from each choice's structure: ``smiles``, see ``structures.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from skopt.space import Categorical, Dimension, Integer, Real

from .errors import SpecError, StateError

_CONTINUOUS_KEYS = {"type", "low", "high", "log"}
_INTEGER_KEYS = {"type", "low", "high"}
_CATEGORICAL_KEYS = {"type", "choices", "descriptors", "smiles"}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class Variable:
    """One search dimension. ``kind`` is "continuous", "integer" or "categorical"."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    choices: list[Any] = field(default_factory=list)
    descriptors: dict[Any, list[float]] | None = None
    smiles: dict[Any, str] | None = None  # the structures the descriptors were computed from

    @property
    def is_numeric(self) -> bool:
        return self.kind != "categorical"

    def to_spec(self) -> dict[str, Any]:
        if self.kind == "categorical":
            spec: dict[str, Any] = {"choices": list(self.choices)}
            if self.smiles is not None:
                spec["smiles"] = {str(k): v for k, v in self.smiles.items()}
            elif self.descriptors is not None:
                spec["descriptors"] = {str(k): list(v) for k, v in self.descriptors.items()}
            return spec
        if self.kind == "integer":
            return {"type": "integer", "low": int(self.low), "high": int(self.high)}
        spec = {"low": self.low, "high": self.high}
        if self.log:
            spec["log"] = True
        return spec

    def skopt_dimension(self) -> Dimension:
        if self.kind == "categorical":
            return Categorical(list(range(len(self.choices))), name=self.name)
        if self.kind == "integer":
            return Integer(int(self.low), int(self.high), name=self.name)
        prior = "log-uniform" if self.log else "uniform"
        return Real(self.low, self.high, prior=prior, name=self.name)

    # unit <-> native for one column ------------------------------------------------------
    def to_unit(self, values: np.ndarray) -> np.ndarray:
        if self.kind == "categorical":
            index = {c: i for i, c in enumerate(self.choices)}
            return np.array([index[v] for v in values], dtype=float)
        values = values.astype(float)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return (np.log(values) - lo) / (hi - lo)
        return (values - self.low) / (self.high - self.low)

    def from_unit(self, unit: np.ndarray) -> np.ndarray:
        if self.kind == "categorical":
            idx = np.clip(np.rint(unit).astype(int), 0, len(self.choices) - 1)
            return np.array(self.choices, dtype=object)[idx]
        unit = np.clip(unit, 0.0, 1.0)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            # exp(log) can overshoot the bounds by an ulp; the clip keeps them hard.
            return np.clip(np.exp(lo + unit * (hi - lo)), self.low, self.high)
        values = self.low + unit * (self.high - self.low)
        if self.kind == "integer":
            return np.clip(np.rint(values), self.low, self.high)
        return np.clip(values, self.low, self.high)

    def native(self, value: Any) -> Any:
        """Plain-Python value (JSON friendly) of one native value."""
        if self.kind == "categorical":
            for c in self.choices:
                if c == value:
                    return c
            raise StateError(f"{self.name}: {value!r} is not one of {self.choices}")
        if not _is_number(value) and not isinstance(value, np.integer | np.floating):
            raise StateError(f"{self.name}: expected a number, got {value!r}")
        if self.kind == "integer":
            return round(float(value))
        return float(value)

    def contains(self, value: Any) -> bool:
        if self.kind == "categorical":
            return any(c == value for c in self.choices)
        try:
            v = float(value)
        except (TypeError, ValueError):
            return False
        return self.low <= v <= self.high


def parse_variable(name: str, spec: Any) -> Variable:
    if not isinstance(name, str) or not name.isidentifier():
        raise SpecError(f"variable name {name!r} must be a Python-style identifier")
    if not isinstance(spec, Mapping):
        raise SpecError(f"variable {name!r}: expected a mapping, got {type(spec).__name__}")
    kind = spec.get("type")
    if kind is None:
        kind = "categorical" if "choices" in spec else "continuous"
    aliases = {
        "float": "continuous", "real": "continuous", "int": "integer", "choice": "categorical"
    }
    kind = aliases.get(kind, kind)
    allowed = {
        "continuous": _CONTINUOUS_KEYS,
        "integer": _INTEGER_KEYS,
        "categorical": _CATEGORICAL_KEYS,
    }.get(kind)
    if allowed is None:
        raise SpecError(
            f"variable {name!r}: unknown type {kind!r} (continuous, integer or categorical)"
        )
    unknown = set(spec) - allowed
    if unknown:
        raise SpecError(
            f"variable {name!r} ({kind}): unknown key(s) {sorted(unknown)}; "
            f"allowed: {sorted(allowed)}"
        )
    if kind == "categorical":
        return _parse_categorical(name, spec)
    for key in ("low", "high"):
        if key not in spec:
            raise SpecError(f"variable {name!r}: missing {key!r}")
        if not _is_number(spec[key]):
            raise SpecError(f"variable {name!r}: {key!r} must be a finite number")
    low, high = float(spec["low"]), float(spec["high"])
    if low >= high:
        raise SpecError(f"variable {name!r}: low ({low}) must be < high ({high})")
    if kind == "integer":
        if low != int(low) or high != int(high):
            raise SpecError(f"variable {name!r}: integer bounds must be whole numbers")
        return Variable(name, "integer", low=int(low), high=int(high))
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SpecError(f"variable {name!r}: 'log' must be true or false")
    if log and low <= 0:
        raise SpecError(f"variable {name!r}: a log-scaled variable needs low > 0 (got {low})")
    return Variable(name, "continuous", low=low, high=high, log=log)


def _parse_categorical(name: str, spec: Mapping[str, Any]) -> Variable:
    choices = spec.get("choices")
    if not isinstance(choices, Sequence) or isinstance(choices, str) or len(choices) == 0:
        raise SpecError(f"variable {name!r}: 'choices' must be a non-empty list")
    choices = list(choices)
    for c in choices:
        if not isinstance(c, str | int | float | bool):
            raise SpecError(f"variable {name!r}: choice {c!r} must be a string or number")
    if len({repr(c) for c in choices}) != len(choices):
        raise SpecError(f"variable {name!r}: duplicate choices")
    if spec.get("descriptors") is not None and spec.get("smiles") is not None:
        raise SpecError(f"variable {name!r}: give 'descriptors' or 'smiles', not both")
    if spec.get("smiles") is not None:
        smiles = _parse_smiles(name, choices, spec["smiles"])
        from .structures import choice_descriptors

        return Variable(name, "categorical", choices=choices,
                        descriptors=choice_descriptors(smiles), smiles=smiles)
    parsed = _parse_descriptors(name, choices, spec.get("descriptors"))
    return Variable(name, "categorical", choices=choices, descriptors=parsed)


def _by_choice(
    name: str, key: str, choices: list[Any], given: Any, what: str
) -> dict[Any, Any]:
    """``given`` (a mapping keyed by the choices, as strings or as themselves) per choice;
    ``what`` names one value ("descriptor vector", "structure")."""
    if not isinstance(given, Mapping):
        raise SpecError(f"variable {name!r}: {key!r} must map each choice to its value")
    by_str = {str(k): v for k, v in given.items()}
    extra = set(by_str) - {str(c) for c in choices}
    if extra:
        raise SpecError(f"variable {name!r}: {key} for unknown choices {sorted(extra)}")
    missing = [c for c in choices if str(c) not in by_str]
    if missing:
        raise SpecError(f"variable {name!r}: no {what} for choice {missing[0]!r}; give "
                        f"every choice one, or none")
    return {c: by_str[str(c)] for c in choices}


def _parse_smiles(name: str, choices: list[Any], given: Any) -> dict[Any, str]:
    from .structures import InvalidStructure, standardise

    smiles = _by_choice(name, "smiles", choices, given, "structure")
    for choice, text in smiles.items():
        try:
            standardise(text)
        except InvalidStructure as exc:
            raise SpecError(f"variable {name!r}, choice {choice!r}: {exc}") from None
    return smiles


def _parse_descriptors(
    name: str, choices: list[Any], given: Any
) -> dict[Any, list[float]] | None:
    if given is None:
        return None
    vectors = _by_choice(name, "descriptors", choices, given, "descriptor vector")
    width = None
    for c, vec in vectors.items():
        if not isinstance(vec, Sequence) or not vec or not all(_is_number(v) for v in vec):
            raise SpecError(f"variable {name!r}: descriptors of {c!r} must be numbers")
        if width is not None and len(vec) != width:
            raise SpecError(f"variable {name!r}: descriptor vectors differ in length")
        width = len(vec)
    return {c: [float(v) for v in vec] for c, vec in vectors.items()}


class Space:
    """An ordered set of variables with sampling and encoding helpers."""

    def __init__(self, variables: Mapping[str, Any]) -> None:
        if not isinstance(variables, Mapping) or not variables:
            raise SpecError("'variables' must be a non-empty mapping of name -> definition")
        self.variables = [parse_variable(n, s) for n, s in variables.items()]
        self.names = [v.name for v in self.variables]
        self._build_encoders()

    def _build_encoders(self) -> None:
        # Per categorical variable: matrix (n_choices, width) giving its encoded columns.
        self._cat_tables: dict[str, np.ndarray] = {}
        self._described: set[str] = set()  # categoricals encoded by their descriptors
        width = 0
        for v in self.variables:
            if v.kind != "categorical":
                width += 1
                continue
            if v.descriptors is not None:
                table = np.array([v.descriptors[c] for c in v.choices], dtype=float)
                lo, hi = table.min(axis=0), table.max(axis=0)
                keep = hi > lo  # a constant descriptor carries no information
                table = (table[:, keep] - lo[keep]) / (hi[keep] - lo[keep])
                if table.shape[1] == 0:
                    table = np.eye(len(v.choices))
                else:
                    self._described.add(v.name)
            else:
                table = np.eye(len(v.choices))
            self._cat_tables[v.name] = table
            width += table.shape[1]
        self.encoded_width = width

    @property
    def dim(self) -> int:
        return len(self.variables)

    @property
    def is_discrete(self) -> bool:
        return all(v.kind != "continuous" for v in self.variables)

    def size(self) -> float:
        """Number of distinct points (inf if any variable is continuous)."""
        total = 1.0
        for v in self.variables:
            if v.kind == "continuous":
                return math.inf
            total *= len(v.choices) if v.kind == "categorical" else v.high - v.low + 1
        return total

    def to_spec(self) -> dict[str, Any]:
        return {v.name: v.to_spec() for v in self.variables}

    def skopt_dimensions(self) -> list[Dimension]:
        return [v.skopt_dimension() for v in self.variables]

    # sampling -------------------------------------------------------------------------------
    def sample_unit(self, n: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.random((n, self.dim))
        for j, v in enumerate(self.variables):
            if v.kind == "categorical":
                z[:, j] = rng.integers(0, len(v.choices), n)
            elif v.kind == "integer":
                # Sample the integers uniformly, not the unit interval (end values would be
                # half as likely otherwise).
                k = int(v.high - v.low)
                z[:, j] = rng.integers(0, k + 1, n) / k
        return z

    def snap(self, z: np.ndarray) -> np.ndarray:
        """Round unit coordinates to what they decode to (integers, category indices)."""
        z = np.array(z, dtype=float)
        for j, v in enumerate(self.variables):
            if v.kind == "categorical":
                z[:, j] = np.clip(np.rint(z[:, j]), 0, len(v.choices) - 1)
            else:
                z[:, j] = np.clip(z[:, j], 0.0, 1.0)
                if v.kind == "integer":
                    k = v.high - v.low
                    z[:, j] = np.rint(z[:, j] * k) / k
        return z

    # conversions ---------------------------------------------------------------------------
    def columns(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """Native values, one array per variable (what constraints are evaluated on)."""
        return {v.name: v.from_unit(z[:, j]) for j, v in enumerate(self.variables)}

    def to_points(self, z: np.ndarray) -> list[dict[str, Any]]:
        cols = self.columns(z)
        out = []
        for i in range(z.shape[0]):
            point = {}
            for v in self.variables:
                value = cols[v.name][i]
                point[v.name] = v.native(value) if v.kind != "categorical" else value
            out.append(point)
        return out

    def validate_point(self, point: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(point, Mapping):
            raise StateError(f"a point must be a mapping of variable -> value, got {point!r}")
        missing = [n for n in self.names if n not in point]
        extra = [k for k in point if k not in self.names]
        if missing or extra:
            raise StateError(f"point {dict(point)!r}: missing {missing}, unknown {extra}")
        return {v.name: v.native(point[v.name]) for v in self.variables}

    def from_points(self, points: Sequence[Mapping[str, Any]]) -> np.ndarray:
        z = np.empty((len(points), self.dim))
        for j, v in enumerate(self.variables):
            col = np.array([p[v.name] for p in points], dtype=object)
            z[:, j] = v.to_unit(col)
        return z

    def encode(self, z: np.ndarray) -> np.ndarray:
        z = np.atleast_2d(z)
        parts = []
        for j, v in enumerate(self.variables):
            if v.kind == "categorical":
                idx = np.clip(np.rint(z[:, j]).astype(int), 0, len(v.choices) - 1)
                parts.append(self._cat_tables[v.name][idx])
            else:
                parts.append(z[:, j : j + 1])
        return np.hstack(parts)

    def continuous_columns(self) -> np.ndarray:
        """Mask of the encoded columns that come from continuous or integer variables (not
        from a categorical's one-hot or descriptor columns)."""
        mask: list[bool] = []
        for v in self.variables:
            width = self._cat_tables[v.name].shape[1] if v.kind == "categorical" else 1
            mask += [v.kind != "categorical"] * width
        return np.array(mask, dtype=bool)

    def descriptor_columns(self) -> np.ndarray:
        """Mask of the encoded columns that are descriptors of a categorical's choices."""
        mask: list[bool] = []
        for v in self.variables:
            if v.kind != "categorical":
                mask.append(False)
                continue
            mask += [v.name in self._described] * self._cat_tables[v.name].shape[1]
        return np.array(mask, dtype=bool)

    def column_groups(self) -> np.ndarray | None:
        """Group index per encoded column: a categorical's one-hot block is one group, every
        other column (numeric, descriptor) its own. None when no group has two columns."""
        groups: list[int] = []
        for v in self.variables:
            if v.kind == "categorical" and v.name not in self._described:
                groups += [len(set(groups))] * self._cat_tables[v.name].shape[1]
            else:
                width = self._cat_tables[v.name].shape[1] if v.kind == "categorical" else 1
                for _ in range(width):
                    groups.append(len(set(groups)))
        if len(set(groups)) == len(groups):
            return None
        return np.array(groups, dtype=int)

    def contains(self, point: Mapping[str, Any]) -> bool:
        return all(v.name in point and v.contains(point[v.name]) for v in self.variables)
