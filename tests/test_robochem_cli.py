"""The installed ``robochem`` command, run as a user would."""

import os
import subprocess
import sys
from pathlib import Path

from robochem import __version__

ROBOCHEM = str(Path(sys.executable).with_name("robochem"))


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [ROBOCHEM, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"robochem {__version__}"


def test_db_upgrade_then_info_with_url_from_environment(tmp_path: Path) -> None:
    env = {"ROBOCHEM_DATABASE_URL": "sqlite:///x.db"}
    result = run("db", "upgrade", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x.db").exists()
    info = run("db", "info", env=env, cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "up to date" in info.stdout and "campaigns" in info.stdout


def test_db_info_on_an_empty_database_says_it_needs_upgrade(tmp_path: Path) -> None:
    result = run("db", "info", "--url", f"sqlite:///{tmp_path / 'new.db'}")
    assert result.returncode == 1
    assert "needs upgrade" in result.stdout


def test_unsupported_database_url_is_a_clear_error(tmp_path: Path) -> None:
    result = run("db", "upgrade", "--url", "mysql://u:secret@host/db")
    assert result.returncode != 0
    assert "unsupported database URL" in result.stderr + result.stdout
    assert "secret" not in result.stderr + result.stdout


def test_log_level_flag_is_validated() -> None:
    result = run("--log-level", "LOUD", "db", "info")
    assert result.returncode != 0
    assert "unknown log level" in result.stderr + result.stdout
