"""The off-appliance rule: a backup destination must not live on the appliance itself.

For a ``file://`` destination we compare the device (``st_dev``) of the destination directory (or
its nearest existing parent) with the devices of the appliance's own data: ``state_dir``,
``var_dir`` and the given source paths. Same device means the backup would die with the appliance.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sealbox.errors import PolicyError

__all__ = ["check_destination", "device_of"]


def device_of(path: Path) -> int | None:
    """``st_dev`` of ``path`` or of its nearest existing parent; None if nothing exists."""
    current = path.absolute()
    while True:
        try:
            return os.stat(current).st_dev
        except FileNotFoundError:
            if current.parent == current:
                return None
            current = current.parent
        except OSError:
            return None


def _local_root(url: str) -> Path | None:
    if "://" not in url:
        return Path(url)
    parts = urlsplit(url)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


def check_destination(name: str, url: str, allow: bool, appliance_paths: list[Path]) -> list[str]:
    """Return warnings, or raise PolicyError when the destination is on the appliance."""
    root = _local_root(url)
    if root is None:
        return []
    dest_dev = device_of(root)
    clashes = [p for p in appliance_paths if dest_dev is not None and device_of(p) == dest_dev]
    if not clashes:
        return []
    what = f"destination {name!r} ({root}) is on the same filesystem as {clashes[0]}"
    if not allow:
        raise PolicyError(
            f"{what}: a backup on the appliance dies with it; use a remote destination"
            " (or set allow_on_appliance = true for tests and demos)"
        )
    return [f"{what}: allowed by allow_on_appliance, but this backup is NOT off the appliance"]
