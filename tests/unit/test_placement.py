import os
from pathlib import Path

import pytest

from sealbox.errors import PolicyError
from sealbox.placement import check_destination, device_of


def test_same_filesystem_is_refused(tmp_path):
    with pytest.raises(PolicyError, match="same filesystem"):
        check_destination("d", f"file://{tmp_path}/remote", False, [tmp_path / "state"])


def test_override_warns(tmp_path):
    warnings = check_destination("d", str(tmp_path / "remote"), True, [tmp_path])
    assert len(warnings) == 1 and "NOT off the appliance" in warnings[0]


def test_other_filesystem_passes(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or device_of(shm) == device_of(tmp_path):
        pytest.skip("no second filesystem (/dev/shm) to compare with")
    assert (
        check_destination("d", f"file://{shm}/sealbox-test-{os.getpid()}", False, [tmp_path]) == []
    )


def test_device_of_walks_up_to_an_existing_parent(tmp_path):
    assert device_of(tmp_path / "not" / "yet") == os.stat(tmp_path).st_dev
