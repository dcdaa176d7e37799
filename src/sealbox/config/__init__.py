"""Configuration: one pydantic schema drives validation, the sample config and the reference docs."""

from sealbox.config.load import DEFAULT_PATH, load_config, resolve_path
from sealbox.config.models import Config

__all__ = ["DEFAULT_PATH", "Config", "load_config", "resolve_path"]
