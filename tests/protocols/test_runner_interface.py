"""The scale-up runner drives the lab through the engine's public interface only, and the
scale-up planner is pure language (issue 30: "the scale-up runner is a second engine")."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "protocols" / "runtime"


def _engine_attributes(path: Path) -> list[tuple[int, str]]:
    """Every ``e.X`` / ``self.e.X`` / ``engine.X`` attribute the module reads."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        is_engine = (isinstance(owner, ast.Name) and owner.id in ("e", "engine")) or (
            isinstance(owner, ast.Attribute)
            and owner.attr == "e"
            and isinstance(owner.value, ast.Name)
            and owner.value.id == "self"
        )
        if is_engine:
            found.append((node.lineno, node.attr))
    return found


def test_the_scale_up_runner_calls_no_private_engine_method() -> None:
    used = _engine_attributes(RUNTIME / "scaleup.py")
    assert len(used) > 20  # the probe sees the runner's calls
    private = [f"scaleup.py:{line}: engine.{name}" for line, name in used if name.startswith("_")]
    assert private == []


def test_the_scale_up_runner_imports_no_private_engine_name() -> None:
    tree = ast.parse((RUNTIME / "scaleup.py").read_text(encoding="utf-8"))
    imported = [
        (node.lineno, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("engine")
        for alias in node.names
    ]
    assert [name for _, name in imported if name.startswith("_")] == []


def test_importing_the_scale_up_planner_imports_neither_the_orm_nor_the_engine() -> None:
    probe = (
        "import json, sys\n"
        "import robochem.protocols.scaleup, robochem.protocols.scaleup_checks\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.splitlines()[-1])
    assert "robochem.protocols.scaleup" in loaded
    heavy = [
        m
        for m in loaded
        if m.split(".")[0] == "sqlalchemy"
        or m.startswith(("robochem.protocols.runtime", "robochem.storage"))
    ]
    assert heavy == []
