"""SFTP against a real OpenSSH server on 127.0.0.1: the repository, host keys, a dropped link."""

from __future__ import annotations

import json

import pytest

from sealbox.backends import open_backend
from sealbox.crypto import agekeys
from sealbox.errors import DestinationError
from sealbox.keys.store import Keystore
from sealbox.repo.backup import run_backup
from sealbox.repo.blobs import BlobReader
from sealbox.repo.check import run_check
from sealbox.repo.repository import Repository
from sealbox.repo.restore import plan_restore, run_restore
from tests.conftest import make_tree


def test_repository_roundtrip_over_sftp(sftp_env, tmp_path):
    identity = agekeys.identity_from_secret(agekeys.new_secret())
    identities = agekeys.load_identities(identity, "t")
    Repository.init(open_backend(sftp_env), [agekeys.recipient_of(identity)], tmp_path / "state")
    src = make_tree(tmp_path / "src", big=12_000_000)
    first = run_backup(
        Repository.open_writer(open_backend(sftp_env), tmp_path / "state"),
        [src],
        state_dir=tmp_path / "state",
    )
    assert first.snapshot.files == 7
    repo = Repository.open(open_backend(sftp_env), identities, Keystore(tmp_path / "state").trust())
    reader = BlobReader(repo, repo.load_index(), identities)
    assert run_check(repo, reader=reader, read_data=True).ok
    plan = plan_restore(
        repo, reader.index, reader, repo.find_snapshot(first.snapshot.id), tmp_path / "out"
    )
    assert not run_restore(repo, reader.index, reader, plan, tmp_path / "out").failed
    copy = tmp_path / "out" / str(src).lstrip("/")
    assert (copy / "var" / "rec.bin").read_bytes() == (src / "var" / "rec.bin").read_bytes()


def test_host_key_is_always_verified(sftp_env, ssh_server, tmp_path, monkeypatch):
    stranger = tmp_path / "known_hosts"
    stranger.write_text(
        f"[127.0.0.1]:{ssh_server.port} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4\n"
    )
    monkeypatch.setenv("SEALBOX_SSH_KNOWN_HOSTS", str(stranger))
    with pytest.raises(DestinationError, match="host key is not the one in"):
        list(open_backend(sftp_env).list(""))
    stranger.write_text("")
    with pytest.raises(DestinationError, match="host key is not the one in"):
        list(open_backend(sftp_env).list(""))


def test_a_dropped_link_is_reconnected(sftp_env, ssh_server):
    backend = open_backend(sftp_env)
    backend.put("a/one", b"1")
    backend._conn.abort()  # the network drops the SSH connection
    backend.put("a/two", b"2")
    assert sorted(o.name for o in backend.list("a/")) == ["a/one", "a/two"]
    backend.close()


def test_product_backups_over_sftp(appliance, sealbox, ssh_server, tmp_path):
    url = f"sftp://root@127.0.0.1:{ssh_server.port}{tmp_path}/offsite"
    text = appliance.config.read_text().replace(
        f'url = "file://{appliance.remote}"',
        f'url = "{url}"\nssh_key_file = "{ssh_server.key}"\nknown_hosts_file = "{ssh_server.known_hosts}"',
    )
    appliance.config.write_text(text)
    result = sealbox("backup", "secrets", "--config", appliance.config, "--json")
    assert result.code == 0, result.err
    assert "address of this appliance" in " ".join(json.loads(result.out)["warnings"])
    listed = json.loads(sealbox("keys", "list", "--config", appliance.config, "--json").out)
    assert len(listed[0]["backups"]) == 1


def test_capacity_over_sftp(sftp_env):
    backend = open_backend(sftp_env)
    capacity = backend.capacity()
    assert capacity.total and capacity.free and 0 < capacity.free <= capacity.total
    backend.close()
