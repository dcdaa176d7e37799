"""``kdbx`` source: a KeePass KDBX 3/4 file, read with pykeepass.

An entry becomes an item: title -> name, UserName, URL, Password and protected custom fields ->
secret, other custom fields -> fields, tags, notes, and the entry's history -> versions. The custom
field ``sealbox_type`` (or the group name, if it is an item type) sets the item type.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from sealbox.config.models import KdbxSource
from sealbox.errors import SourceError
from sealbox.items import ITEM_TYPES, Item, Version, normalise_time
from sealbox.util.secretfile import read_secret_file

__all__ = ["read"]


def _secret_of(entry: Any) -> dict[str, str]:
    secret: dict[str, str] = {}
    if entry.password:
        secret["password"] = entry.password
    for key, value in (entry.custom_properties or {}).items():
        if value is not None and key != "sealbox_type" and entry.is_custom_property_protected(key):
            secret[key] = value
    return secret


def _type_of(entry: Any) -> str:
    wanted = (entry.custom_properties or {}).get("sealbox_type")
    if wanted in ITEM_TYPES:
        return str(wanted)
    group = getattr(entry.group, "name", None)
    return group if group in ITEM_TYPES else "credential"


def read(source: KdbxSource) -> Iterator[Item]:
    from pykeepass import PyKeePass
    from pykeepass.exceptions import CredentialsError, HeaderChecksumError, PayloadChecksumError

    where = f"source {source.name!r} ({source.path})"
    password = read_secret_file(source.password_file, where) if source.password_file else None
    try:
        kp = PyKeePass(
            str(source.path),
            password=password,
            keyfile=str(source.keyfile) if source.keyfile else None,
        )
    except CredentialsError as exc:
        raise SourceError(f"{where}: wrong password or key file") from exc
    except (HeaderChecksumError, PayloadChecksumError) as exc:
        raise SourceError(f"{where}: the file is damaged") from exc
    except FileNotFoundError as exc:
        raise SourceError(f"{where}: no such file") from exc
    except Exception as exc:  # pykeepass raises assorted parser errors for non-KDBX input
        raise SourceError(f"{where}: not a readable KeePass file ({type(exc).__name__})") from exc
    for entry in kp.entries:
        custom = entry.custom_properties or {}
        fields = {
            k: v
            for k, v in custom.items()
            if v is not None and k != "sealbox_type" and not entry.is_custom_property_protected(k)
        }
        yield Item(
            id=source.id_prefix + str(entry.uuid),
            type=_type_of(entry),
            name=entry.title or str(entry.uuid),
            secret=_secret_of(entry),
            host=urlsplit(entry.url).hostname if entry.url else None,
            url=entry.url,
            username=entry.username,
            tags=list(entry.tags or []),
            notes=entry.notes,
            fields=fields,
            updated=normalise_time(entry.mtime),
            source=source.name,
            history=[
                Version(time=normalise_time(old.mtime) or "", secret=_secret_of(old))
                for old in entry.history
            ],
        )
