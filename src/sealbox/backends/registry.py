"""URL scheme -> backend module. New backends register here and nowhere else."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sealbox.backends.base import Backend
from sealbox.errors import ConfigError
from sealbox.redact import mask_url

__all__ = ["check_url", "open_backend", "redact_url"]

SUPPORTED = ("file", "memory", "s3", "sftp", "agent+https", "agent+http")


def _scheme(url: str) -> str:
    if "://" not in url:
        return "file"  # a plain path
    return urlsplit(url).scheme.lower()


def check_url(url: str) -> None:
    """Raise ValueError (pydantic turns it into a config problem) if no backend handles ``url``."""
    scheme = _scheme(url)
    if scheme not in SUPPORTED:
        raise ValueError(
            f"unsupported destination scheme {scheme!r} (supported: {', '.join(SUPPORTED)})"
        )
    if scheme == "file" and "://" in url:
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ValueError("file:// URLs take no host: use file:///absolute/path")


def redact_url(url: str) -> str:
    """The URL without any password in its user part (:func:`sealbox.redact.mask_url`)."""
    return mask_url(url)


def open_backend(url: str, options: Any = None) -> Backend:
    """A backend for ``url``; raises ConfigError for an unknown scheme.

    ``options`` is the destination's config (credentials, quota); plumbing commands pass none and
    backends read the standard environment variables instead.
    """
    try:
        check_url(url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if _scheme(url).startswith("agent+"):
        from sealbox.backends.agent import AgentBackend

        return AgentBackend.from_url(
            url,
            getattr(options, "token_file", None),
            getattr(options, "ca_file", None),
            getattr(options, "client_cert", None),
            getattr(options, "client_key", None),
        )
    if _scheme(url) == "sftp":
        from sealbox.backends.sftp import SFTPBackend

        return SFTPBackend.from_url(
            url, getattr(options, "ssh_key_file", None), getattr(options, "known_hosts_file", None)
        )
    if _scheme(url) == "s3":
        from sealbox.backends.s3 import S3Backend

        secret = None
        if options is not None and options.secret_key_file is not None:
            from sealbox.sources.secretfile import read_secret_file

            secret = read_secret_file(options.secret_key_file, "destination secret_key_file")
        return S3Backend.from_url(
            url,
            getattr(options, "access_key_id", None),
            secret,
            getattr(options, "quota_bytes", None),
        )
    if _scheme(url) == "memory":
        from sealbox.backends.memory import MemoryBackend

        return MemoryBackend.from_url(url)
    from sealbox.backends.local import LocalBackend

    return LocalBackend.from_url(url)
