"""The QEMU host: virtlogd and libvirtd started by hand (no systemd), reached locally and over SSH.

libvirtd probes the QEMU binaries before it answers, so ``lab up`` starts it first and
waits for it last.

Guests are TCG only. Where /dev/kvm exists but cannot run guests, libvirtd must not
reach it: its QEMU probe (run as root) would find KVM, its usability check (as the QEMU
user) would not, and it would throw its capabilities away and probe again, seconds
long, on every capabilities or version call. So libvirtd runs in a device cgroup that
denies opening /dev/kvm: no KVM for the probe, none for the check, none for guests, and
the rest of the machine is untouched.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from urllib.parse import quote

from labfleet.errors import LabfleetError
from labfleet.lab.layout import LOCAL_LIBVIRT_URI, LOOPBACK, SSH_PORT
from labfleet.lab.paths import LabPaths
from labfleet.lab.procs import Daemon, run, running_pid, tail, wait_until


def virtlogd(paths: LabPaths) -> Daemon:
    pid_file = paths.runtime("virtlogd.pid")
    return Daemon("virtlogd", pid_file, marker=str(pid_file))


def libvirtd(paths: LabPaths) -> Daemon:
    pid_file = paths.runtime("libvirtd.pid")
    return Daemon("libvirtd", pid_file, marker=str(pid_file))


def ssh_uri(paths: LabPaths) -> str:
    """libvirt over the build server's sshd, as root with the lab's key.

    ``no_verify=1`` lets ssh accept the lab's host key the first time it sees it.
    """
    keyfile = quote(str(paths.private_key), safe="/")
    return f"qemu+ssh://root@{LOOPBACK}:{SSH_PORT}/system?keyfile={keyfile}&no_verify=1"


KVM_DEVICE = Path("/dev/kvm")
DEVICES_CGROUP = Path("/sys/fs/cgroup/devices")
CGROUP_NAME = "labfleet-lab-libvirtd"


def _without_kvm(argv: list[str | Path]) -> list[str | Path]:
    """``argv`` run in a devices cgroup (v1) that denies /dev/kvm, where there is one to deny.

    Reading and writing are denied, not mknod: libvirt still creates the node in each
    guest's private /dev, which a guest that never asks for KVM never opens.
    """
    if not KVM_DEVICE.exists() or not (DEVICES_CGROUP / "devices.deny").exists():
        return argv
    group = DEVICES_CGROUP / CGROUP_NAME
    group.mkdir(exist_ok=True)
    device = KVM_DEVICE.stat().st_rdev
    (group / "devices.deny").write_text(f"c {os.major(device)}:{os.minor(device)} rw\n")
    script = 'echo $$ > "$1" && shift && exec "$@"'
    return ["sh", "-c", script, "sh", group / "cgroup.procs", *argv]


def remove_cgroup() -> None:
    """The cgroup of a stopped libvirtd (it cannot be removed while a process is in it)."""
    with contextlib.suppress(OSError):
        (DEVICES_CGROUP / CGROUP_NAME).rmdir()


def start(paths: LabPaths) -> list[str]:
    """Start virtlogd and libvirtd unless they run; the names of those started. Does not wait."""
    started = []
    for daemon, program in ((virtlogd(paths), "virtlogd"), (libvirtd(paths), "libvirtd")):
        if running_pid(daemon) is not None:
            continue
        daemon.pid_file.unlink(missing_ok=True)
        log = paths.runtime(f"{program}.log")
        # Warnings and errors only; libvirtd would otherwise log to a syslog that is not there.
        env = {"LIBVIRT_LOG_OUTPUTS": f"3:file:{log}"}
        argv: list[str | Path] = [program, "--daemon", "--pid-file", daemon.pid_file]
        if program == "libvirtd":
            argv = _without_kvm(argv)
        run(argv, what=program, env=env, timeout=60)
        started.append(program)
    return started


def answers(uri: str, *, timeout: float = 15) -> bool:
    """Whether libvirt at ``uri`` answers a request of its QEMU driver (``virsh list``).

    Not ``virsh version``: with a /dev/kvm that exists but cannot run guests, libvirt
    re-probes the QEMU binary on every version or capabilities call (seconds each).
    """
    try:
        run(
            ["virsh", "--quiet", "--connect", uri, "list", "--all", "--name"],
            what=f"libvirt at {uri}",
            timeout=timeout,
        )
    except LabfleetError:
        return False
    return True


def wait_ready(paths: LabPaths, *, timeout: float = 90) -> None:
    """Wait until libvirtd answers on qemu:///system, or fail naming it."""
    daemon = libvirtd(paths)

    def ready() -> bool:
        if running_pid(daemon) is None:
            raise LabfleetError("libvirtd: exited while starting\n" + tail(paths.runtime("libvirtd.log")))
        return answers(LOCAL_LIBVIRT_URI, timeout=10)

    wait_until(
        ready,
        timeout=timeout,
        what=f"libvirtd ({LOCAL_LIBVIRT_URI})",
        interval=0.5,
        hint=lambda: tail(paths.runtime("libvirtd.log")),
    )
