"""Find, read and validate the configuration file; report every problem with its key path."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sealbox.config.models import DESTINATION_TAGS, Config
from sealbox.errors import ConfigError

__all__ = ["DEFAULT_PATH", "load_config", "resolve_path", "validate"]

DEFAULT_PATH = Path("/etc/sealbox/sealbox.toml")


def resolve_path(option: str | os.PathLike[str] | None) -> Path:
    """``--config`` if given, else ``$SEALBOX_CONFIG``, else the default path."""
    if option:
        return Path(option)
    env = os.environ.get("SEALBOX_CONFIG")
    return Path(env) if env else DEFAULT_PATH


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("sql", "kdbx", "json", "command") and out.endswith("]"):
            continue  # pydantic names the union member it tried; the index already says which
        elif part in DESTINATION_TAGS and out.startswith("destinations.") and out.count(".") == 1:
            continue  # the backend a destination's URL names: its scheme already says which
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def validate(data: dict[str, Any]) -> tuple[Config | None, list[tuple[str, str]]]:
    """Validate parsed TOML; return the config (or None) and every problem as (key path, message)."""
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key (typo?)"
                loc = err["loc"]
                if len(loc) == 4 and loc[0] == "destinations" and loc[2] in DESTINATION_TAGS:
                    message = f"unknown key (typo?), or not an option of {loc[2]} destinations"
            problems.append((_loc(err["loc"]), message))
        return None, problems
    return config, config.cross_check()


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found (use --config PATH or SEALBOX_CONFIG)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def read_toml(path: Path) -> dict[str, Any]:
    return parse_toml(read_text(path), path)


def load_config(path: Path) -> Config:
    """Read and validate; raise ConfigError listing every problem on one line."""
    return config_from_text(read_text(path), path)


def config_from_text(text: str, path: Path) -> Config:
    """Validate a config file's text (what the daemon keeps and hands to its jobs)."""
    config, problems = validate(parse_toml(text, path))
    if problems or config is None:
        listed = "; ".join(f"{where}: {what}" for where, what in problems)
        raise ConfigError(
            f"{path}: {len(problems)} problem(s): {listed} (see `sealbox config check`)"
        )
    return config
