"""Storage backends: one module per URL scheme behind :class:`sealbox.backends.base.Backend`."""

from sealbox.backends.base import Backend, ObjectInfo, validate_name
from sealbox.backends.registry import check_url, open_backend, redact_url

__all__ = ["Backend", "ObjectInfo", "check_url", "open_backend", "redact_url", "validate_name"]
