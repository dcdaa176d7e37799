"""Who backups are sealed to: the master key from the keystore plus the configured extra
recipients (every kind) and repository-only recipients (repositories, never secrets backups)."""

from __future__ import annotations

from sealbox.breakglass.document import KeyRecord
from sealbox.config.models import Config
from sealbox.crypto import agekeys
from sealbox.errors import KeyNotSetError
from sealbox.keys.store import Keystore

__all__ = ["recipients_for", "repository_recipients_for"]


def recipients_for(config: Config, keystore: Keystore) -> list[KeyRecord]:
    """The master key (keystore) plus extra recipients (config), each with its key id and role."""
    keys: list[KeyRecord] = []
    current = keystore.current()
    if current is not None:
        keys.append(KeyRecord(id=current.id, recipient=current.recipient, role="master"))
    for recipient in config.keys.recipients:
        if all(k["recipient"] != recipient for k in keys):
            agekeys.parse_recipient(recipient)
            keys.append(
                KeyRecord(id=agekeys.key_id(recipient), recipient=recipient, role="recipient")
            )
    if not keys:
        raise KeyNotSetError(
            "no master key is set: run `sealbox keys ceremony` (or set keys.recipients)"
        )
    return keys


def repository_recipients_for(config: Config, keystore: Keystore) -> list[KeyRecord]:
    """What the product's repositories are sealed to: :func:`recipients_for` plus
    ``keys.repository_recipients`` (role ``repository``), which secrets backups never get."""
    keys = recipients_for(config, keystore)
    for recipient in config.keys.repository_recipients:
        if all(k["recipient"] != recipient for k in keys):
            agekeys.parse_recipient(recipient)
            keys.append(
                KeyRecord(id=agekeys.key_id(recipient), recipient=recipient, role="repository")
            )
    return keys
