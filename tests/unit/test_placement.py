import os

import pytest

from sealbox.destinations.placement import check_destination, device_of
from sealbox.errors import DestinationError, PolicyError


def test_same_filesystem_is_refused(tmp_path):
    (tmp_path / "remote").mkdir()
    with pytest.raises(PolicyError, match="same filesystem"):
        check_destination("d", f"file://{tmp_path}/remote", False, [tmp_path / "state"])


def test_a_missing_directory_on_the_appliance_is_a_share_not_mounted(tmp_path):
    with pytest.raises(DestinationError, match=r"no such directory.*is the share mounted"):
        check_destination("d", f"file://{tmp_path}/mnt/nas", False, [tmp_path / "state"])
    assert not (tmp_path / "mnt").exists()


def test_override_warns(tmp_path):
    warnings = check_destination("d", str(tmp_path / "remote"), True, [tmp_path])
    assert len(warnings) == 1 and "NOT off the appliance" in warnings[0]


def test_other_filesystem_passes(tmp_path):
    """A destination on another filesystem is off the appliance. The second filesystem is a
    tmpfs the test mounts (root; required under CI), so the check runs everywhere it must."""
    from tests.conftest import small_tmpfs

    with small_tmpfs(tmp_path / "other", "1m") as other:
        assert device_of(other) != device_of(tmp_path)
        assert check_destination("d", f"file://{other}/sealbox", False, [tmp_path]) == []
        # ... and the same directory tree, one filesystem down, is refused.
        (tmp_path / "remote").mkdir()
        with pytest.raises(PolicyError):
            check_destination("d", f"file://{tmp_path}/remote", False, [tmp_path])


def test_device_of_walks_up_to_an_existing_parent(tmp_path):
    assert device_of(tmp_path / "not" / "yet") == os.stat(tmp_path).st_dev


def test_network_destinations_on_this_machine_are_refused():
    import socket

    from sealbox.destinations.placement import is_local_address

    assert is_local_address("127.0.0.1") and is_local_address("localhost")
    assert not is_local_address("192.0.2.10")  # TEST-NET-1: never ours
    with pytest.raises(PolicyError, match="address of this appliance"):
        check_destination("d", "s3://bucket/p?endpoint=http://127.0.0.1:9000", False, [])
    with pytest.raises(PolicyError):
        check_destination("d", f"sftp://backup@{socket.gethostname()}/srv", False, [])
    warned = check_destination("d", "s3://bucket/p?endpoint=http://localhost:9000", True, [])
    assert "NOT off the appliance" in warned[0]
    assert check_destination("d", "s3://bucket/p?endpoint=http://192.0.2.10:9000", False, []) == []
