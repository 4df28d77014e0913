"""The build server: an OpenSSH sshd of its own on loopback, a build user, and the lab's key pair."""

from __future__ import annotations

import pwd
from pathlib import Path

from labfleet.lab.layout import BUILD_USER, LOOPBACK, SSH_PORT
from labfleet.lab.paths import LabPaths
from labfleet.lab.procs import Daemon, listening, run, running_pid, tail, wait_until

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")


def daemon(paths: LabPaths) -> Daemon:
    return Daemon("sshd", paths.runtime("sshd.pid"), marker=str(paths.runtime("sshd_config")))


def ensure_user() -> None:
    """The build user: a login shell, no password, and an account sshd does not consider locked."""
    try:
        pwd.getpwnam(BUILD_USER)
    except KeyError:
        run(
            [
                "useradd",
                "--create-home",
                "--shell",
                "/bin/sh",
                "--comment",
                "labfleet lab builds",
                BUILD_USER,
            ],
            what=f"useradd {BUILD_USER}",
        )
    # A "!" password locks the account for sshd without PAM; "*" only means no password login.
    run(["usermod", "-p", "*", BUILD_USER], what=f"usermod {BUILD_USER}")


def ensure_keys(paths: LabPaths) -> None:
    """The lab's client key and sshd's host key, made once and kept across `lab down`."""
    paths.keys.mkdir(parents=True, exist_ok=True)
    # sshd reads authorized_keys as the user logging in, so the directory must be traversable.
    paths.keys.chmod(0o755)
    for key, comment in ((paths.private_key, "labfleet-lab"), (paths.host_key, "labfleet-lab-host")):
        if not key.exists():
            run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key],
                what="ssh-keygen",
            )
    public = paths.private_key.with_suffix(".pub").read_text().strip()
    paths.authorized_keys.write_text(public + "\n")
    paths.authorized_keys.chmod(0o644)
    host_type, host_key, *_ = paths.host_key.with_suffix(".pub").read_text().split()
    paths.known_hosts.write_text(f"[{LOOPBACK}]:{SSH_PORT} {host_type} {host_key}\n")
    paths.known_hosts.chmod(0o644)


def config(paths: LabPaths) -> str:
    return f"""\
# labfleet virtual lab: the build server's sshd (written by `labfleet lab up`).
Port {SSH_PORT}
ListenAddress {LOOPBACK}
HostKey {paths.host_key}
PidFile {daemon(paths).pid_file}
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile {paths.authorized_keys}
# root logs in with the key too: libvirt's qemu+ssh:// reaches libvirtd as root.
PermitRootLogin prohibit-password
AllowUsers {BUILD_USER} root
StrictModes yes
PrintMotd no
MaxStartups 64:30:128
MaxSessions 64
Subsystem sftp internal-sftp
"""


def start(paths: LabPaths, *, timeout: float = 20) -> bool:
    """Start sshd unless it runs; whether it was started."""
    if is_up(paths):
        return False
    ensure_user()
    ensure_keys(paths)
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    conf = paths.runtime("sshd_config")
    conf.write_text(config(paths))
    log = paths.runtime("sshd.log")
    run([SSHD, "-t", "-f", conf], what="sshd (config check)")
    # sshd binds, then detaches and writes its pid file.
    run([SSHD, "-f", conf, "-E", log], what="sshd")
    wait_until(
        lambda: is_up(paths),
        timeout=timeout,
        what=f"sshd on {LOOPBACK}:{SSH_PORT}",
        hint=lambda: tail(log),
    )
    return True


def is_up(paths: LabPaths) -> bool:
    return running_pid(daemon(paths)) is not None and listening(SSH_PORT)
