"""The one settings model: defaults, then a TOML file, then `PASSAGE_*` environment."""

from config.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
