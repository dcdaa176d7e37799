#!/usr/bin/env bash
# Install the external tools the tests use: the age CLI (interoperability), OpenSSH's ssh-keygen
# (signature verification with the standard tool), sshd (the SFTP tests' server) and Chromium
# (the dashboard and browser-opener tests' browser, driven by Playwright; never `playwright install`)
# keepassxc-cli (the opener's KDBX export is opened with KeePassXC's own tool) and Node with npm
# (the opener's reproducible build), and the network mounts of the vanishing-share tests: sshfs
# with fuse3 (FUSE over the test sshd), Samba's smbd with cifs-utils (the kernel CIFS client) and
# smbnetfs (a FUSE SMB client, where the kernel cannot mount CIFS).
# Debian packages; root only. SeaweedFS (the S3 tests' server) comes from PyPI with the dev extras.
set -euo pipefail
need=()
command -v age >/dev/null 2>&1 || need+=(age)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v keepassxc-cli >/dev/null 2>&1 || need+=(keepassxc)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)  # builds the browser opener (make opener)
command -v sshfs >/dev/null 2>&1 || need+=(sshfs fuse3)
[ -x /usr/sbin/smbd ] || need+=(samba)
[ -x /sbin/mount.cifs ] || [ -x /usr/sbin/mount.cifs ] || need+=(cifs-utils)
command -v smbnetfs >/dev/null 2>&1 || need+=(smbnetfs)
if [ "${1:-}" = "--bench" ]; then
    command -v restic >/dev/null 2>&1 || need+=(restic)
    command -v borg >/dev/null 2>&1 || need+=(borgbackup)
    command -v par2 >/dev/null 2>&1 || need+=(par2)  # bench/parity_bench.py's comparison
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${need[@]}" >/dev/null
else
    echo "note: ${need[*]} missing and cannot be installed here (not root); tests needing them skip" >&2
fi
