"""Storage: schema, migrations and database access (SQLite or PostgreSQL)."""

from robochem.storage.db import Database, database_info, open_database, upgrade

__all__ = ["Database", "database_info", "open_database", "upgrade"]
