"""The dashboard's overview lists the credentials a break-glass revealed until they are rotated."""

from __future__ import annotations

from types import SimpleNamespace

from sealbox.dashboard.web import _env


def _overview(rotations):
    return _env.get_template("overview.html").render(
        session=SimpleNamespace(csrf="c", user="alice", role="viewer", operator=False),
        page="overview",
        appliance="pam-01",
        path="/",
        cards=[],
        key=None,
        recipients=[],
        status={"warnings": [], "rotations": rotations},
        snap={"pid": 1, "started": 0, "jobs": {}},
        other_jobs={},
        notice=None,
    )


def test_open_rotations_are_listed_escaped_and_the_section_goes_when_none_are_left():
    task = {
        "id": "cred-1",
        "type": "credential",
        "name": "<script>x</script>",
        "how": "reveal",
        "revealed": "2026-01-02T00:00:00Z",
        "backup": "secrets-pam-01-20260101T000000Z.age",
    }
    html = _overview([task])
    assert 'id="rotations"' in html and "Credentials to rotate after a break-glass (1)" in html
    assert "cred-1" in html and "&lt;script&gt;" in html and "<script>x" not in html
    assert 'id="rotations"' not in _overview([])
