"""The table of backends: URL schemes -> options model and opener. A new backend is a module with
``SCHEMES``, an options model (a :class:`~sealbox.backends.options.DestinationOptions`) and
``open_destination``, plus one row here (and its member in ``config.models.DestinationConfig``)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sealbox.backends.base import Backend
from sealbox.backends.retry import with_retries
from sealbox.errors import ConfigError
from sealbox.util.redact import mask_url

if TYPE_CHECKING:
    from sealbox.backends.options import DestinationOptions

__all__ = ["KINDS", "Kind", "check_url", "kind_of", "open_backend", "redact_url"]


@dataclass(frozen=True)
class Kind:
    """One backend: its name (the tag of its destination tables), its URL schemes, its options
    model, and the module with its opener. The module is imported only when a backend of this
    kind is opened, so a command pays for one backend's libraries, not for all five; its own
    ``SCHEMES`` must match the row (a test checks)."""

    name: str
    schemes: tuple[str, ...]
    options_model: str  # its class in backends/options.py
    module: str

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    @property
    def options(self) -> type[DestinationOptions]:
        # Imported on use: opening a backend from the plumbing (`sealbox repo ...`, no config)
        # then never imports pydantic (measured: 0.15 s more for every such command).
        from sealbox.backends import options

        model: type[DestinationOptions] = getattr(options, self.options_model)
        return model

    def open(self, url: str, options: DestinationOptions | None) -> Backend:
        backend: Backend = self.load().open_destination(url, options)
        return backend


KINDS: tuple[Kind, ...] = (
    Kind("file", ("file",), "LocalOptions", "sealbox.backends.local"),
    Kind("memory", ("memory",), "MemoryOptions", "sealbox.backends.memory"),
    Kind("s3", ("s3",), "S3Options", "sealbox.backends.s3"),
    Kind("sftp", ("sftp",), "SFTPOptions", "sealbox.backends.sftp"),
    Kind("agent", ("agent+https", "agent+http"), "AgentOptions", "sealbox.backends.agent"),
)
SUPPORTED = tuple(scheme for kind in KINDS for scheme in kind.schemes)


def _scheme(url: str) -> str:
    if "://" not in url:
        return "file"  # a plain path
    return urlsplit(url).scheme.lower()


def kind_of(url: str) -> Kind | None:
    """The backend that handles ``url``, or None."""
    scheme = _scheme(url)
    return next((kind for kind in KINDS if scheme in kind.schemes), None)


def check_url(url: str) -> None:
    """Raise ValueError (pydantic turns it into a config problem) if no backend handles ``url``."""
    kind = kind_of(url)
    if kind is None:
        raise ValueError(
            f"unsupported destination scheme {_scheme(url)!r} (supported: {', '.join(SUPPORTED)})"
        )
    kind.options.model_validate({"url": url})  # the backend's own URL checks


def redact_url(url: str) -> str:
    """The URL without any password in its user part (:func:`sealbox.util.redact.mask_url`)."""
    return mask_url(url)


def open_backend(url: str, options: DestinationOptions | None = None) -> Backend:
    """A backend for ``url``; raises ConfigError for an unknown scheme.

    ``options`` is the destination's table (credentials, quota, Object Lock), validated by the
    backend's own model; plumbing commands pass none and backends read the standard environment
    variables instead.
    """
    kind = kind_of(url)
    if kind is None:
        raise ConfigError(
            f"unsupported destination scheme {_scheme(url)!r} (supported: {', '.join(SUPPORTED)})"
        )
    if options is not None and not isinstance(options, kind.options):
        raise ConfigError(
            f"{mask_url(url)}: the options given are for another kind of destination"
            f" ({type(options).__name__}, not {kind.options.__name__})"
        )
    return with_retries(kind.open(url, options))
