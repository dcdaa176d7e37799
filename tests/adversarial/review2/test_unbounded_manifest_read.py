"""Review 2 finding: `sealbox keys list` reads every secrets backup's manifest from the
destination with ``backend.get(name)`` (no bound): a storage attacker plants a huge (sparse)
``secrets-<appliance>-<time>.manifest.json`` and the appliance buffers it whole (file:// reads
st_size, SFTP reads to the size the server claims, the agent and S3 up to 4 GiB). The
threat model's claim: "every read is bounded by its kind's cap" (the opener caps a manifest at
4 MiB). A manifest whose ``keys`` is not a list of objects is also a traceback, not a typed
error."""

from __future__ import annotations

from sealbox.backends import open_backend
from sealbox.breakglass.opener import MAX_MANIFEST
from sealbox.usecases.secrets_backup import backup_key_ids


class Spy:
    def __init__(self, inner) -> None:
        self.inner, self.largest = inner, 0

    def get(self, name, offset=0, length=None):
        data = self.inner.get(name, offset, length)
        self.largest = max(self.largest, len(data))
        return data

    def __getattr__(self, attr):
        return getattr(self.inner, attr)


def _plant(root, manifest: bytes | int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    base = root / "secrets-pam-01-20260101T000000Z"
    (base.with_suffix(".age")).write_bytes(b"x")
    path = root / "secrets-pam-01-20260101T000000Z.age.manifest.json"
    if isinstance(manifest, int):
        with open(path, "wb") as handle:
            handle.truncate(manifest)  # sparse: costs the attacker no disk
    else:
        path.write_bytes(manifest)


def test_keys_list_reads_a_planted_manifest_only_up_to_its_cap(tmp_path):
    _plant(tmp_path / "dest", 64 << 20)  # 64 MiB here; 64 GiB costs the attacker the same
    spy = Spy(open_backend(f"file://{tmp_path}/dest"))
    backup_key_ids(spy, "pam-01")
    assert spy.largest <= MAX_MANIFEST + 1, f"read {spy.largest:,} bytes of a manifest"


def test_keys_list_survives_a_manifest_with_junk_keys(tmp_path):
    _plant(tmp_path / "dest", b'{"format": "sealbox-secrets-manifest", "keys": "ab"}')
    out = backup_key_ids(open_backend(f"file://{tmp_path}/dest"), "pam-01")
    assert out == [("secrets-pam-01-20260101T000000Z.age", [])]
