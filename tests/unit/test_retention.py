from datetime import UTC, datetime, timedelta

from sealbox.backends import open_backend
from sealbox.breakglass.package import backup_name
from sealbox.usecases.secrets_backup import apply_retention, list_backups

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _store(backend, ages_hours):
    names = []
    for hours in ages_hours:
        name = backup_name("pam", (NOW - timedelta(hours=hours)).strftime("%Y%m%dT%H%M%SZ"))
        for suffix in ("", ".sig", ".manifest.json"):
            backend.put(name + suffix, b"x")
        names.append(name)
    return names


def test_keep_last_deletes_oldest_with_side_files(tmp_path):
    backend = open_backend(str(tmp_path))
    names = _store(backend, [0, 1, 2, 3, 4])
    deleted = apply_retention(backend, "pam", 2, None, NOW, protect=names[0])
    assert sorted(deleted) == sorted(names[2:])
    assert list_backups(backend, "pam") == names[:2]
    assert sorted(o.name for o in backend.list()) == sorted(
        n + s for n in names[:2] for s in ("", ".sig", ".manifest.json")
    )


def test_keep_within_or_keep_last(tmp_path):
    backend = open_backend(str(tmp_path))
    names = _store(backend, [0, 10, 30, 50, 80])
    deleted = apply_retention(backend, "pam", 1, "2d", NOW, protect=names[0])
    assert deleted == [names[3], names[4]]  # 50 h and 80 h are past 2 days; 0 h is the last one


def test_no_policy_keeps_everything_and_other_appliances_are_untouched(tmp_path):
    backend = open_backend(str(tmp_path))
    names = _store(backend, [0, 1, 2])
    backend.put(backup_name("other", "20200101T000000Z"), b"x")
    assert apply_retention(backend, "pam", None, None, NOW, protect=names[0]) == []
    assert apply_retention(backend, "pam", 1, None, NOW, protect=names[0]) == names[1:]
    assert backend.stat(backup_name("other", "20200101T000000Z"))


def test_orphan_side_files_of_an_interrupted_run_are_removed(tmp_path):
    backend = open_backend(str(tmp_path))
    names = _store(backend, [0])
    orphan = backup_name("pam", "20261120T000000Z")
    backend.put(orphan + ".sig", b"x")
    apply_retention(backend, "pam", 5, None, NOW, protect=names[0])
    assert {o.name for o in backend.list()} == {
        names[0] + s for s in ("", ".sig", ".manifest.json")
    }


def test_keep_at_least_keeps_young_backups_that_keep_last_would_delete(tmp_path):
    backend = open_backend(str(tmp_path))
    names = _store(backend, [0, 10, 30, 50, 80])
    why: dict[str, str] = {}
    deleted = apply_retention(
        backend, "pam", 1, None, NOW, protect=names[0], keep_at_least="36h", why=why
    )
    assert deleted == [names[3], names[4]]
    assert why == {names[1]: "younger than keep_at_least (36h)", names[2]: why[names[2]]}


def test_delete_after_deletes_old_backups_but_never_the_newest(tmp_path):
    backend = open_backend(str(tmp_path))
    names = _store(backend, [100, 200, 300])
    why: dict[str, str] = {}
    deleted = apply_retention(
        backend, "pam", 10, None, NOW, protect=names[0], delete_after="1d", why=why
    )
    assert deleted == names[1:], "older than a day, though keep_last keeps 10"
    assert list_backups(backend, "pam") == [names[0]], "the one just written always stays"
    assert set(why) == set(names[1:])
