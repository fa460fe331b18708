"""robochem.protocols: protocol and platform files, validation, recipes, the engine.

The public names below are imported on first use, so ``robochem --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Issue": "errors",
    "ProtocolError": "errors",
    "Protocol": "model",
    "Platform": "platform",
    "load_protocol": "load",
    "load_platform": "load",
    "parse_protocol": "load",
    "parse_platform": "load",
    "Recipe": "recipe",
    "expand": "recipe",
    "corners": "recipe",
    "reagent_needs": "checks",
    "protocol_json_schema": "schema",
    "platform_json_schema": "schema",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
