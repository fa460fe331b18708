"""One distribution, one namespace: the folders install under robochem.* only."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MAPPED = {"drivers", "protocols", "optimizer", "web", "simulator"}


def python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=60
    )


@pytest.mark.parametrize("folder", sorted(MAPPED))
def test_folder_imports_under_the_robochem_namespace(folder: str, tmp_path: Path) -> None:
    result = python(f"import robochem.{folder} as m; print(m.__file__)", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == REPO / folder / "__init__.py"


@pytest.mark.parametrize("folder", sorted(MAPPED))
def test_no_generic_top_level_module_is_installed(folder: str, tmp_path: Path) -> None:
    result = python(f"import {folder}", cwd=tmp_path)
    assert result.returncode != 0
    assert "ModuleNotFoundError" in result.stderr


@pytest.mark.slow
def test_wheel_contains_only_the_robochem_namespace(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("robochem-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"robochem"}
    for folder in MAPPED:
        assert f"robochem/{folder}/__init__.py" in names
    assert any(n.startswith("robochem/storage/migrations/versions/0001") for n in names)
    assert "robochem/storage/migrations/env.py" in names
