"""Constants shared by the NMR analysis tests (imported as a plain module)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from robochem.simulator.nmr_synth import Signal

TMB = Signal(6.08, 3.0, 0.05)
PRODUCT = Signal(7.20, 2.0, 0.08, (1.0, 2.0, 1.0), 7.0)  # true yield 80 % of 0.1 M

BASIC_ANALYSIS: dict[str, Any] = {
    "nucleus": "1H",
    "internal_standard": {
        "name": "TMB",
        "region": [5.95, 6.20],
        "nuclei": 3,
        "concentration": "0.05 M",
        "shift": 6.08,
    },
    "product": {"name": "product", "region": [6.95, 7.45], "nuclei": 2},
    "limiting_reagent": {"concentration": "0.1 M"},
}

#: the ``make_folder`` fixture: writes a Spinsolve folder and returns its path
FolderFactory = Callable[..., Path]
