"""File drop: CSV exports from legacy machines, each file taken exactly once.

See README.md in this folder for the configuration reference.
"""
from drivers.filedrop.config import FileDropConfig
from drivers.filedrop.driver import FileDropDriver

__all__ = ["FileDropDriver", "FileDropConfig"]
