"""JSON Schemas of protocol and platform files, for editor completion and checking."""

from __future__ import annotations

from typing import Any

from .model import Protocol
from .platform import Platform

__all__ = ["platform_json_schema", "protocol_json_schema"]

_SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"


def protocol_json_schema() -> dict[str, Any]:
    schema = Protocol.model_json_schema(mode="validation")
    # The analysis block parses concentrations from text ("0.05 M") in a before-validator,
    # which pydantic cannot see: say so, or editors would flag every valid block.
    text_or_number = {
        "anyOf": [{"type": "string", "examples": ["0.05 M"]}, {"type": "number"}],
        "description": "a concentration with units, e.g. '0.05 M' (a bare number is mol/L)",
    }
    for name in ("InternalStandard", "LimitingReagent"):
        props = schema.get("$defs", {}).get(name, {}).get("properties", {})
        if "concentration" in props:
            props["concentration"] = dict(text_or_number)
    # The measure defaults to the objective's key (filled in before validation).
    objective = schema.get("$defs", {}).get("Objective", {})
    if "measure" in objective.get("required", []):
        objective["required"].remove("measure")
    return {"$schema": _SCHEMA_URI, **schema}


def platform_json_schema() -> dict[str, Any]:
    return {"$schema": _SCHEMA_URI, **Platform.model_json_schema(mode="validation")}
