from pathlib import Path

import pytest
from pydantic import ValidationError

from robochem.settings import Settings, default_settings_file, get_settings, reset_settings


def test_defaults_put_database_and_data_in_the_user_data_directory(tmp_path: Path) -> None:
    s = Settings()
    assert s.database_url.startswith("sqlite:///")
    assert s.database_url.endswith("robochem.db")
    assert "robochem" in str(s.data_dir)
    assert (s.host, s.port, s.log_level, s.clock_speed) == ("127.0.0.1", 8000, "INFO", 1.0)


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOCHEM_DATABASE_URL", "sqlite:///env.db")
    monkeypatch.setenv("ROBOCHEM_PORT", "9001")
    monkeypatch.setenv("ROBOCHEM_LOG_LEVEL", "debug")
    s = Settings()
    assert (s.database_url, s.port, s.log_level) == ("sqlite:///env.db", 9001, "DEBUG")


def test_precedence_keyword_then_environment_then_file_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lab.toml"
    path.write_text('database_url = "sqlite:///file.db"\nport = 8100\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("ROBOCHEM_SETTINGS_FILE", str(path))
    monkeypatch.setenv("ROBOCHEM_PORT", "8200")
    s = Settings(host="10.0.0.5")
    assert s.host == "10.0.0.5"  # keyword beats file
    assert s.port == 8200  # environment beats file
    assert s.database_url == "sqlite:///file.db"  # file beats default
    assert s.log_level == "INFO"  # default


def test_default_settings_file_is_read_when_present() -> None:
    path = default_settings_file()
    path.parent.mkdir(parents=True)
    path.write_text("port = 8123\n")
    reset_settings()
    assert get_settings().port == 8123


def test_unknown_key_in_settings_file_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lab.toml"
    path.write_text("prot = 8100\n")
    monkeypatch.setenv("ROBOCHEM_SETTINGS_FILE", str(path))
    with pytest.raises(ValidationError, match="prot"):
        Settings()


def test_named_settings_file_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBOCHEM_SETTINGS_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(FileNotFoundError, match=r"missing\.toml"):
        Settings()


@pytest.mark.parametrize(
    ("name", "value"), [("PORT", "0"), ("CLOCK_SPEED", "0"), ("LOG_LEVEL", "LOUD")]
)
def test_invalid_values_are_rejected_not_adjusted(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"ROBOCHEM_{name}", value)
    with pytest.raises(ValidationError):
        Settings()
