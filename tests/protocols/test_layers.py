"""The protocol language never imports the runtime (docs/architecture.md, "Rooms").

Loading and validating protocols (scale-up ones included) in a fresh interpreter must not
pull in the engine, the lab, the database or anything else that runs a campaign; and no
module of the language may import the runtime, not even lazily inside a function.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols"

#: Module prefixes that belong to running a campaign, not to describing one.
RUNTIME_PREFIXES = (
    "robochem.protocols.runtime",
    "robochem.storage",
    "robochem.events",
    "robochem.web",
    "robochem.simulator",
    "sqlalchemy",
    "pymodbus",
)

PROBE = """
import json, sys
from robochem.protocols.load import load_platform, load_protocol, parse_protocol
from robochem.protocols.scaleup import Chosen, scale_up_protocol_text
from robochem.protocols import schema

root = sys.argv[1]
platform = load_platform(f"{root}/platforms/simulated.yaml")
for name in ("hat-alkylation", "cf3-trifluoromethylation", "photoredox-catalyst-choice"):
    load_protocol(f"{root}/examples/{name}.yaml", platform)
hat = open(f"{root}/examples/hat-alkylation.yaml").read()
conditions = {"residence_time": 600.0, "light": 80.0, "catalyst_loading": 0.02,
              "donor_equivalents": 2.0, "concentration": 0.1, "temperature": 40.0}
text = scale_up_protocol_text(Chosen(1, "hat", hat, 0, conditions, 70.0, 1.3, {}), 2.0, platform)
assert parse_protocol(text, "<scale-up>", platform).scale_up is not None
schema.protocol_json_schema(); schema.platform_json_schema()
print(json.dumps(sorted(sys.modules)))
"""


def test_loading_and_validating_imports_no_runtime_module() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(PROTOCOLS)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.splitlines()[-1])
    assert "robochem.protocols.scaleup_checks" in loaded  # the scale-up checks ran
    runtime = [m for m in loaded if m.startswith(RUNTIME_PREFIXES)]
    assert runtime == []


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (top level or inside functions), made absolute."""
    package = "robochem.protocols"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package if node.level == 1 else ("robochem" if node.level == 2 else "")
            name = ".".join(p for p in (base, node.module or "") if p)
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{a.name}") for a in node.names]
    return found


def test_no_language_module_imports_the_runtime() -> None:
    language = [p for p in PROTOCOLS.glob("*.py")]
    assert {p.stem for p in language} >= {"model", "load", "checks", "units", "recipe", "steps"}
    offending = [
        f"{path.name}:{line}: {name}"
        for path in language
        for line, name in _imports(path)
        if name.startswith(RUNTIME_PREFIXES)
    ]
    assert offending == []
