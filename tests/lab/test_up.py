"""`lab up` starts every part of the virtual lab, and `lab status` shows each running."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from labfleet.cli.main import app
from labfleet.lab.layout import BOARDS, PDU_PORT, SSH_PORT
from labfleet.lab.procs import listening
from tests.lab.conftest import VirtualLab

pytestmark = pytest.mark.lab

DAEMONS = {"sshd", "virtlogd", "libvirtd", "ser2net", "pdudaemon", *(f"socat ({b.name})" for b in BOARDS)}


def test_every_part_runs_and_every_board_is_on(lab: VirtualLab) -> None:
    current = lab.status()
    assert current.up, [p for p in current.parts if not p.running]
    assert {p.name for p in current.parts if p.kind == "daemon"} == DAEMONS
    assert {p.name for p in current.parts if p.kind == "board"} == {b.name for b in BOARDS}
    for port in (SSH_PORT, PDU_PORT, *(b.console_port for b in BOARDS)):
        assert listening(port), port


def test_status_command_shows_every_part(lab: VirtualLab) -> None:
    result = CliRunner().invoke(app, ["lab", "status", "--json"], env=lab.paths.env())
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["up"] is True
    assert all(part["running"] and part["pid"] for part in shown["parts"])

    table = CliRunner().invoke(app, ["lab", "status"], env={**lab.paths.env(), "COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    for name in DAEMONS | {b.name for b in BOARDS}:
        assert name in table.output


def test_up_again_leaves_what_runs_alone(lab: VirtualLab) -> None:
    before = {p.name: p.pid for p in lab.status().parts}
    started = time.monotonic()
    lab.up()
    assert time.monotonic() - started < 10
    assert {p.name: p.pid for p in lab.status().parts} == before
