"""What runs inside the checker's processes (``robochem.web.checker``).

The checker's forkserver imports this module before forking any check, and importing it
warms up everything a check needs (the protocol language, the optimiser's libraries that
the checks import on first use, pint's unit registry) by checking a shipped example: every
forked check then starts warm, copy-on-write, in milliseconds instead of about a second.
The dashboard process itself never imports this module.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

import robochem.protocols
from robochem.protocols.errors import ProtocolError
from robochem.protocols.load import load_platform, load_protocol, parse_protocol

log = logging.getLogger("robochem.web.check_worker")

PROTOCOLS = Path(robochem.protocols.__file__).resolve().parent


def ping() -> bool:
    return True


def validate(text: str, file: str, platform: Any) -> list[tuple[str, int, int, str]]:
    """The problems of a protocol text as (message, line, column, path); [] when valid."""
    try:
        parse_protocol(text, file, platform)
    except ProtocolError as exc:
        return [(i.message, i.line, i.column, i.path) for i in exc.issues]
    return []


def _warm_up() -> None:
    try:
        platform = load_platform(PROTOCOLS / "platforms" / "simulated.yaml")
        load_protocol(PROTOCOLS / "examples" / "hat-alkylation.yaml", platform)
    except Exception:
        # Warming up is only a speed-up: a cold check still works, so whatever went wrong is
        # logged and the forkserver goes on (failing here would break every check).
        log.exception("warming up the protocol checker failed; checks will start cold")
    # What exists now is shared by every forked check: the collector leaves it alone, or
    # each check would traverse (and copy) the hundreds of MB the imports allocated.
    gc.freeze()


_warm_up()
