"""Review finding: append-only's exemption is by the name of the direct parent directory
(``.../locks/X``, ``.../probes/X``). A destination whose path ends in ``locks`` or ``probes``
(``agent+https://host/ns/backups/locks``) puts its top-level objects - secrets backups, a
repository's ``config`` - under such a parent, and the append-only token deletes them."""

from __future__ import annotations

import pytest

from sealbox.backends.agent import AgentBackend
from sealbox.errors import DestinationError


def test_a_destination_named_probes_keeps_its_backups_append_only(append_only):
    token = append_only.token("shop")
    backend = AgentBackend(append_only.url, "shop", token, True, prefix="site/probes")
    backend.put("secrets-pam-20260101T000000Z.age", b"age-encryption.org/v1 ...")
    with pytest.raises(DestinationError):
        backend.delete("secrets-pam-20260101T000000Z.age")
