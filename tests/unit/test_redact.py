"""URL masking (pure): the password never shows, whatever the operator typed."""

from __future__ import annotations

import pytest

from sealbox.util.redact import ambiguous_userinfo, mask_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql://root:pw@h/db", "mysql://root:***@h/db"),
        ("mysql://root:p@ss/w@h/db", "mysql://root:***@h/db"),  # unencoded '@' and '/'
        ("mysql://root:Secret-pw/db", "mysql://root:***/db"),  # the host forgotten
        (
            "postgresql://h/db?sslmode=require&password=zz",
            "postgresql://h/db?sslmode=require&password=***",
        ),
        ("agent+https://ops:pw@10.0.0.5:8443/ns", "agent+https://ops:***@10.0.0.5:8443/ns"),
        ("mysql://h:3306/db", "mysql://h:3306/db"),
        ("postgresql://[::1]:5432/db", "postgresql://[::1]:5432/db"),
        ("postgresql://[::1]/db", "postgresql://[::1]/db"),
        ("sftp://backup@h:22/srv/x", "sftp://backup@h:22/srv/x"),
        ("s3://b/p?endpoint=http://minio:9000", "s3://b/p?endpoint=http://minio:9000"),
        ("sqlite:////var/lib/pam/app.db", "sqlite:////var/lib/pam/app.db"),
        ("/mnt/backup", "/mnt/backup"),
    ],
)
def test_mask_url(url, shown):
    assert mask_url(url) == shown


def test_ambiguous_user_parts_are_recognised():
    assert ambiguous_userinfo("mysql://root:p@ss@h/db")
    assert ambiguous_userinfo("mysql://root:p/ss@h/db")
    assert not ambiguous_userinfo("mysql://root:p%40ss@h/db")
    assert not ambiguous_userinfo("sftp://backup@h/srv")
