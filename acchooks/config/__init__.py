"""Config files, command-line overrides and custom imports."""

from __future__ import annotations

from .config import Config, ConfigDict, ConfigFileNotFoundError
from .options import DictAction, import_custom_modules, parse_cfg_options, parse_value

__all__ = [
    "Config",
    "ConfigDict",
    "ConfigFileNotFoundError",
    "DictAction",
    "import_custom_modules",
    "parse_cfg_options",
    "parse_value",
]
