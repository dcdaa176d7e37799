"""Jobs that start together on a new appliance (the daemon's catch-up) each ask the keystore
for the signing key: they must all get the same one. With a plain atomic replace each made its
own and the last file written won, so a repository config signed by a loser no longer verified
("signed by ..., not by a key pinned by this appliance's keystore")."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from sealbox.crypto import sshsig
from sealbox.keys.store import Keystore


def _ask(state: str, start, out) -> None:
    start.wait()
    key = Keystore(Path(state)).signing_key(create=True)
    out.put(sshsig.public_key_line(key.public_key()))


def test_processes_creating_the_signing_key_at_once_all_get_the_same_key(tmp_path):
    context = multiprocessing.get_context("fork")
    for round_ in range(5):
        state = tmp_path / f"state-{round_}"
        start, out = context.Barrier(6), context.Queue()
        procs = [context.Process(target=_ask, args=(str(state), start, out)) for _ in range(6)]
        for proc in procs:
            proc.start()
        keys = {out.get(timeout=30) for _ in procs}
        for proc in procs:
            proc.join(timeout=30)
        on_disk = sshsig.public_key_line(Keystore(state).signing_key(create=False).public_key())
        assert keys == {on_disk}
