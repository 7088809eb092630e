"""SQL: polls a table or view of a vendor database (SQLite, PostgreSQL, MariaDB), each row taken once.

See README.md in this folder for the configuration reference.
"""
from drivers.sql.config import SqlConfig
from drivers.sql.driver import SqlDriver
from drivers.sql.source import check

__all__ = ["SqlDriver", "SqlConfig", "check"]
