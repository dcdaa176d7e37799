"""Copies between real network destinations: from the agent (TLS, token) to SFTP (a local
sshd). A copy interrupted half-way resumes with what is missing; with the first destination
destroyed, the system restore and the break-glass open come from the copy alone, identical."""

from __future__ import annotations

import filecmp
import json
import shutil
import signal
import subprocess
import sys
import time

from sealbox.demo import appliance as demo_appliance

SEALBOX = [sys.executable, "-m", "sealbox"]


def test_agent_to_sftp_copy_resumes_and_stands_alone(
    appliance, sealbox, agent_env, agent_server, sftp_env, tmp_path
):
    demo_appliance.create_system(appliance.root)
    text = appliance.config.read_text()
    local = f'url = "file://{appliance.root / "remote"}"'
    assert local in text
    text = text.replace(local, f'url = "{agent_env}"')
    appliance.config.write_text(
        text + f'\n[destinations.second]\nurl = "{sftp_env}"\nallow_on_appliance = true\n'
        '\n[[copies]]\nfrom = "remote"\nto = "second"\n'
    )
    for kind in ("secrets", "system"):
        done = sealbox("backup", kind, "--config", appliance.config)
        assert done.code == 0, done.err

    # Interrupted: a slow copy (a bandwidth limit), stopped with Ctrl-C after a moment.
    slow = subprocess.Popen(
        [*SEALBOX, "copy", "--limit-rate", str(1 << 20), "--config", str(appliance.config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    remote = tmp_path / "sftp-remote"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(remote.rglob("data/*/*")):
        time.sleep(0.1)
    time.sleep(0.5)
    slow.send_signal(signal.SIGINT)
    _, err = slow.communicate(timeout=60)
    assert slow.returncode == 130, err.decode()
    part = {p.relative_to(remote) for p in remote.rglob("*") if p.is_file()}
    assert part and not (remote / "repo" / "config").exists()  # a repository only once whole

    resumed = sealbox("copy", "--config", appliance.config, "--json")
    assert resumed.code == 0, resumed.err
    (report,) = json.loads(resumed.out)
    assert report["objects"] > 0 and report["present"] >= 1 and report["skipped"] == []
    assert {p.relative_to(remote) for p in remote.rglob("*") if p.is_file()} > part

    # The first destination is destroyed: everything comes from the copy.
    namespace = agent_env.rsplit("/", 1)[1]
    shutil.rmtree(agent_server.root / namespace)
    restored = sealbox(
        "restore",
        "system",
        "latest",
        "--target",
        tmp_path / "out",
        "--destination",
        "second",
        *appliance.share_args(1, 2, 3),
        "--config",
        appliance.config,
    )
    assert restored.code == 0, restored.err
    policies = next((tmp_path / "out").rglob("policies"))
    original = next(p for p in (appliance.root / "appliance").rglob("policies") if p.is_dir())
    assert not filecmp.dircmp(policies, original).diff_files
    backup = sorted(remote.glob("secrets-*.age"))[-1]
    opened = sealbox("breakglass", "open", backup, *appliance.share_args(2, 4, 5), "list")
    assert opened.code == 0, opened.err
    assert "cred-00001" in opened.out
