"""`lab down` stops every process of the lab and leaves nothing behind but its keys.

The test brings the lab back up, so that it may run in any order with the others.
"""

from __future__ import annotations

import pwd
import subprocess

import pytest
from typer.testing import CliRunner

from labfleet.cli.main import app
from labfleet.lab.layout import BOARDS, PDU_PORT, SSH_PORT
from labfleet.lab.procs import listening
from tests.lab.conftest import VirtualLab

pytestmark = pytest.mark.lab


def leftovers(lab: VirtualLab) -> list[str]:
    """Live processes (`ps`) that belong to the lab: its state directory in their command, or its user."""
    uid = pwd.getpwnam(lab.build_user).pw_uid
    ps = subprocess.run(["ps", "-eo", "pid=,stat=,uid=,args="], capture_output=True, text=True, check=True)
    found = []
    for line in ps.stdout.splitlines():
        pid, stat, owner, args = line.split(None, 3)
        if stat.startswith("Z") or pid == "1":  # a zombie is dead; init reaps it when it gets to it
            continue
        if str(lab.paths.state) in args or int(owner) == uid:
            found.append(line)
    return found


def test_down_leaves_nothing_behind(lab: VirtualLab) -> None:
    result = CliRunner().invoke(app, ["lab", "down"], env=lab.paths.env())
    try:
        assert result.exit_code == 0, result.output
        assert leftovers(lab) == []
        assert not lab.status().anything_running
        for port in (SSH_PORT, PDU_PORT, *(b.console_port for b in BOARDS)):
            assert not listening(port), port
        # Keys stay, so that a labfleet which pinned the host key still trusts the lab.
        assert sorted(p.name for p in lab.paths.state.iterdir()) == [".lock", "keys"]
        assert lab.private_key.exists() and lab.known_hosts.exists()
        # A second down has nothing to do.
        assert CliRunner().invoke(app, ["lab", "down"], env=lab.paths.env()).exit_code == 0
    finally:
        lab.up()
    assert lab.status().up
