"""Settings from environment variables, an optional settings file and defaults.

Precedence, highest first:

1. keyword arguments (``Settings(database_url=...)``, used by tests and the CLI flags);
2. environment variables ``ROBOCHEM_*`` (e.g. ``ROBOCHEM_DATABASE_URL``);
3. the settings file: ``ROBOCHEM_SETTINGS_FILE`` if set, otherwise ``robochem.toml`` in
   the per-user config directory (e.g. ``~/.config/robochem/robochem.toml``), if it exists;
4. defaults: an SQLite database and data folder in the per-user data directory.

The settings file is TOML with the same names in lower case, without the prefix::

    database_url = "postgresql+psycopg://lab:secret@dbhost/robochem"
    port = 8080
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

APP_NAME = "robochem"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def user_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_settings_file() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "robochem.toml"


def settings_file() -> Path | None:
    """The settings file in force: named by ROBOCHEM_SETTINGS_FILE, else the default if present.

    A file named explicitly must exist: a typo should not silently fall back to defaults.
    """
    named = os.environ.get("ROBOCHEM_SETTINGS_FILE")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"ROBOCHEM_SETTINGS_FILE={named}: no such file")
        return path
    default = default_settings_file()
    return default if default.is_file() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROBOCHEM_", extra="forbid", validate_default=True)

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{user_data_dir() / 'robochem.db'}",
        description="SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg://user:pw@host/db",
    )
    data_dir: Path = Field(
        default_factory=lambda: user_data_dir() / "data",
        description="Raw NMR spectra and exports are kept here.",
    )
    host: str = Field("127.0.0.1", description="Dashboard bind address.")
    port: int = Field(8000, ge=1, le=65535, description="Dashboard port.")
    log_level: LogLevel = "INFO"
    log_format: Literal["text", "json"] = "text"
    clock_speed: float = Field(
        1.0, gt=0, description="Simulated seconds per wall second (1 = real time)."
    )
    clock_epoch: float | None = Field(
        None, description="Wall time at which simulated time starts; shared across processes."
    )
    max_yaml_bytes: int = Field(
        1_000_000,
        ge=1,
        description="Largest YAML file or API body robochem reads (protocols are a few kB).",
    )
    check_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Wall-time bound on checking a protocol that came through the API.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = settings_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once. ``reset_settings()`` re-reads them."""
    return Settings()


def reset_settings() -> None:
    get_settings.cache_clear()
