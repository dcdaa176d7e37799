"""Read a small secret (a password) from a file, as config options like ``password_file`` do."""

from __future__ import annotations

from pathlib import Path

from sealbox.errors import ConfigError

__all__ = ["read_secret_file"]


def read_secret_file(path: Path, what: str) -> str:
    """The file's first line, without its newline; ConfigError if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{what}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from exc
    return text.splitlines()[0] if text else ""
