"""Quantities with units at the edge of the protocol language.

Protocol and platform files write quantities as text (``"2 min"``, ``"0.1 M"``, ``"5 mol%"``,
``"25 degC"``); they are parsed once, here, with pint, into canonical floats:

=============  ============  ===========================================
kind           canonical     accepts e.g.
=============  ============  ===========================================
time           s             "90 s", "2 min", "1.5 h"
volume         mL            "650 uL", "0.65 mL", "3.9 mL"
flow           mL/min        "0.39 mL/min", "20 uL/min", "1 mL/h"
concentration  mol/L (M)     "0.1 M", "50 mM", "0.1 mol/L"
temperature    degC          "25 degC", "25 °C", "298.15 K"
pressure       bar           "10 bar", "145 psi", "1 MPa"
percent        %             "80 %", "80 percent", 80
ratio          equiv         "18 equiv", "5 mol%", "0.05", 1.5
wavelength     nm            "450 nm"
length         mm            "0.8 mm", "800 um"
throughput     mmol/h        "1.87 mmol/h"
amount         mmol          "5 mmol", "0.5 mol"
=============  ============  ===========================================

Bare numbers are accepted only where the canonical unit is a pure number (percent and
ratio); everywhere else a unit is required, because a bare ``2`` for a residence time is
exactly the ambiguity that makes a campaign run 60 times too long.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["KINDS", "Quantity", "UnitError", "parse_quantity"]


class UnitError(ValueError):
    """Text that is not a quantity of the expected kind; the message says what was expected."""


@dataclass(frozen=True)
class Kind:
    name: str
    unit: str  # canonical pint unit
    symbol: str  # how the canonical unit is displayed
    example: str
    dimension: str  # in words, for messages
    bare_numbers: bool = False


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("time", "s", "s", "2 min", "a time"),
        Kind("volume", "mL", "mL", "0.65 mL", "a volume"),
        Kind("flow", "mL/min", "mL/min", "0.5 mL/min", "a flow rate (volume per time)"),
        Kind("concentration", "mol/L", "M", "0.1 M", "a concentration (amount per volume)"),
        Kind("temperature", "degC", "degC", "25 degC", "a temperature"),
        Kind("pressure", "bar", "bar", "10 bar", "a pressure"),
        Kind("percent", "percent", "%", "80 %", "a percentage", bare_numbers=True),
        Kind("ratio", "equiv", "equiv", "1.5 equiv", "equivalents or mol%", bare_numbers=True),
        # length before wavelength: a length given for a time is "a length", not a wavelength
        Kind("length", "mm", "mm", "0.8 mm", "a length"),
        Kind("wavelength", "nm", "nm", "450 nm", "a wavelength (length)"),
        Kind("throughput", "mmol/h", "mmol/h", "1.5 mmol/h", "an amount per time"),
        Kind("amount", "mmol", "mmol", "5 mmol", "an amount of substance"),
        Kind("frequency", "Hz", "Hz", "1.5 Hz", "a frequency (an NMR line width)"),
    )
}

# pint reads "%" but not "mol%"; equivalents are a pure ratio (1 equiv = 100 mol%).
_MOL_PERCENT = re.compile(r"mol\s*%")

# A quantity is a number and a unit made of names, small integer powers, "*" and "/". The
# text is checked against this before pint sees it: pint evaluates what it is given, and
# "9**9**9 mL" would compute for ever; anything else pint might accept ("2 furlongs",
# "1/2 mL") is not a lab's way of writing a quantity.
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NAME = r"(?:°|[^\W\d])+|%"
_FACTOR = rf"(?:{_NAME})(?:\s*(?:\*\*|\^)\s*-?[1-4])?"
_UNIT = rf"{_FACTOR}(?:\s*[*/]\s*{_FACTOR})*"
_QUANTITY = re.compile(rf"\s*(?P<number>{_NUMBER})\s*(?P<unit>{_UNIT})?\s*")
_NAMES = re.compile(_NAME)

#: The units robochem reads (pint's names), with SI prefixes for the first group only.
_PREFIXED_UNITS = frozenset(
    {"second", "liter", "meter", "mole", "molar", "gram", "bar", "pascal", "hertz"}
)
_PLAIN_UNITS = frozenset(
    {
        "minute", "hour", "day", "degree_Celsius", "kelvin", "degree_Fahrenheit",
        "pound_force_per_square_inch", "standard_atmosphere", "percent", "equiv",
        "mol_percent",
    }
)  # fmt: skip


def _unknown_unit(unit_text: str) -> str | None:
    """The first name in ``unit_text`` that is not a unit robochem reads, else None."""
    reg = _registry()
    for name in _NAMES.findall(unit_text):
        candidates = reg.parse_unit_name(name)
        if not candidates:
            return name
        prefix, unit, _suffix = candidates[0]  # the reading pint itself would use
        if not (unit in _PREFIXED_UNITS or (unit in _PLAIN_UNITS and not prefix)):
            return name
    return None


@lru_cache(maxsize=1)
def _registry() -> Any:
    import pint

    reg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    reg.define("molar = mole / liter = M")
    reg.define("equiv = 1 = eq = equivalent = equivalents")
    reg.define("mol_percent = 0.01 equiv")
    return reg


def _dimension_words(quantity: Any) -> str:
    dims = dict(quantity.dimensionality)
    if not dims:
        return "a pure number"
    for kind in KINDS.values():
        if kind.bare_numbers:
            continue
        if _registry().Quantity(1, kind.unit).dimensionality == quantity.dimensionality:
            return kind.dimension
    names = {
        "[mass]": "a mass",
        "[current]": "a current",
        "[substance]": "an amount of substance",
        "[luminosity]": "a luminous intensity",
    }
    if len(dims) == 1 and next(iter(dims.values())) == 1:
        return names.get(next(iter(dims)), f"a quantity of dimension {quantity.dimensionality}")
    return f"a quantity of dimension {quantity.dimensionality}"


def parse_quantity(value: object, kind: str) -> float:
    """Parse text (or a bare number where allowed) to a float in the kind's canonical unit."""
    import pint

    k = KINDS[kind]
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        raise UnitError(f"expected {k.dimension} such as '{k.example}', got {_show(value)}")
    if isinstance(value, int | float):
        if not k.bare_numbers:
            raise UnitError(
                f"{_show(value)} has no unit; write {k.dimension} with its unit, e.g. '{k.example}'"
            )
        magnitude = float(value)
    else:
        text = _MOL_PERCENT.sub(" mol_percent", str(value).strip())
        if not text:
            raise UnitError(f"expected {k.dimension} such as '{k.example}', got ''")
        reg = _registry()
        expected = f"expected {k.dimension} such as '{k.example}'"
        match = _QUANTITY.fullmatch(text)
        if match is None:
            raise UnitError(f"cannot read {_show(value)} as a quantity; {expected}")
        unit_text = match["unit"] or ""
        unknown = _unknown_unit(unit_text)
        if unknown is not None:
            raise UnitError(
                f"cannot read {_show(value)}: {unknown!r} is not a unit robochem knows; {expected}"
            )
        try:
            quantity = reg.Quantity(float(match["number"]), unit_text or "dimensionless")
        except (pint.errors.PintError, ValueError, TypeError, AttributeError, SyntaxError):
            raise UnitError(f"cannot read {_show(value)} as a quantity; {expected}") from None
        if quantity.dimensionless and quantity.units == reg.dimensionless and not k.bare_numbers:
            raise UnitError(
                f"{_show(value)} has no unit; write {k.dimension} with its unit, e.g. '{k.example}'"
            )
        try:
            magnitude = float(quantity.to(k.unit).magnitude)
        except pint.errors.DimensionalityError:
            raise UnitError(
                f"{_show(value)} is {_dimension_words(quantity)}, expected {k.dimension} "
                f"such as '{k.example}'"
            ) from None
    if not math.isfinite(magnitude):
        raise UnitError(f"{_show(value)} is not a finite number")
    return magnitude


def format_quantity(value: float, kind: str) -> str:
    """Canonical display: ``600 s``, ``0.39 mL/min``."""
    return f"{value:.4g} {KINDS[kind].symbol}"


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Quantity:
    """A parsed quantity: canonical value plus the text the file gave (for display)."""

    value: float
    text: str
    kind: str

    def __str__(self) -> str:
        return self.text

    @property
    def canonical(self) -> str:
        return format_quantity(self.value, self.kind)


def quantity_type(
    kind: str, *, minimum: float | None = None, exclusive: bool = False, description: str = ""
) -> Any:
    """An ``Annotated`` pydantic type: text in, :class:`Quantity` (canonical value) out."""
    from typing import Annotated

    from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

    k = KINDS[kind]

    def validate(raw: object) -> Quantity:
        if isinstance(raw, Quantity):
            return raw
        value = parse_quantity(raw, kind)
        if minimum is not None and (value < minimum or (exclusive and value == minimum)):
            bound = format_quantity(minimum, kind)
            raise UnitError(
                f"{_show(raw)} must be {'greater than' if exclusive else 'at least'} {bound}"
            )
        text = raw.strip() if isinstance(raw, str) else f"{raw:g} {k.symbol}"
        return Quantity(value, text, kind)

    text_schema: dict[str, Any] = {
        "type": "string",
        "description": (description + " " if description else "")
        + f"{k.dimension} with units, e.g. '{k.example}' (canonical unit: {k.symbol})",
        "examples": [k.example],
    }
    schema = (
        {"anyOf": [text_schema, {"type": "number"}], "description": text_schema["description"]}
        if k.bare_numbers
        else text_schema
    )
    return Annotated[
        Quantity,
        PlainValidator(validate),
        PlainSerializer(lambda q: q.text, return_type=str),
        WithJsonSchema(schema),
    ]
