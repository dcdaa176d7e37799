from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from sealbox.config.models import Retention
from sealbox.repo.backup import run_backup
from sealbox.repo.check import run_check
from sealbox.repo.forget import apply_policy, decide, forget_snapshots, prune
from sealbox.repo.repository import Snapshot

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _snaps(hours, host="pam", paths=("/etc",)):
    return [
        Snapshot(
            id=f"{host}-{h}",
            time=(NOW - timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            hostname=host,
            paths=list(paths),
            tree="",
            refs="",
        )
        for h in hours
    ]


def _ids(snaps):
    return sorted(s.id for s in snaps)


def test_keep_last_and_daily():
    snaps = _snaps([0, 1, 2, 25, 26, 49, 73, 200])
    keep, _drop = apply_policy(snaps, Retention(keep_last=2), NOW)
    assert _ids(keep) == ["pam-0", "pam-1"]
    keep, _ = apply_policy(snaps, Retention(keep_daily=3), NOW)
    assert _ids(keep) == ["pam-0", "pam-25", "pam-49"]  # the newest of each of the last 3 days


def test_rules_add_up_and_within():
    snaps = _snaps([0, 5, 30, 80, 24 * 40, 24 * 400])
    keep, drop = apply_policy(snaps, Retention(keep_last=1, keep_within="2d", keep_yearly=2), NOW)
    assert _ids(keep) == ["pam-0", "pam-30", "pam-5", "pam-9600"]
    assert _ids(drop) == ["pam-80", "pam-960"]


def test_groups_are_separate_and_no_policy_keeps_all():
    snaps = _snaps([0, 1], host="a") + _snaps([2, 3], host="b")
    keep, _ = apply_policy(snaps, Retention(keep_last=1), NOW)
    assert _ids(keep) == ["a-0", "b-2"]
    keep, drop = apply_policy(snaps, Retention(), NOW)
    assert len(keep) == 4 and drop == []


def test_keep_at_least_keeps_the_young_whatever_the_count_says():
    snaps = _snaps([0, 1, 2, 30, 24 * 10])
    decision = decide(snaps, Retention(keep_last=1, keep_at_least="2d"), NOW)
    assert _ids(decision.keep) == ["pam-0", "pam-1", "pam-2", "pam-30"]
    assert _ids(decision.forget) == ["pam-240"]
    assert decision.why == {f"pam-{h}": "younger than keep_at_least (2d)" for h in (1, 2, 30)}, (
        "only those the count would have dropped are explained"
    )


def test_delete_after_forgets_the_old_even_when_a_rule_keeps_them():
    snaps = _snaps([0, 24 * 40, 24 * 400])
    decision = decide(snaps, Retention(keep_monthly=24, delete_after="180d"), NOW)
    assert _ids(decision.keep) == ["pam-0", "pam-960"]
    assert _ids(decision.forget) == ["pam-9600"]
    assert decision.why == {"pam-9600": "older than delete_after (180d)"}
    # With no count rule at all, only the age limit deletes.
    only_age = decide(snaps, Retention(delete_after="30d"), NOW)
    assert _ids(only_age.forget) == ["pam-960", "pam-9600"]


def test_delete_after_shorter_than_keep_at_least_is_refused():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="shorter than keep_at_least"):
        Retention(keep_at_least="90d", delete_after="30d")


def test_prune_reclaims_and_keeps_what_snapshots_need(env, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "stable.bin").write_bytes(os.urandom(1_000_000))
    for _n in range(3):
        (src / "changing.bin").write_bytes(os.urandom(2_000_000))
        run_backup(env.writer(), [src], state_dir=env.state)
    repo = env.writer()
    size_before = sum(o.size for o in repo.backend.list("data/"))
    keep, drop = apply_policy(repo.snapshots(), Retention(keep_last=1), datetime.now(UTC))
    forget_snapshots(repo, drop)
    dry = prune(repo, dry_run=True)
    assert sum(o.size for o in repo.backend.list("data/")) == size_before
    result = prune(repo)
    assert result.bytes_freed == dry.bytes_freed > 3_000_000
    size_after = sum(o.size for o in repo.backend.list("data/"))
    assert size_after < size_before - 3_000_000
    repo, reader = env.reader()
    assert run_check(repo, reader=reader, read_data=True).ok
    assert [s.id for s in repo.snapshots()] == [keep[0].id]
