"""Power through the real pdudaemon: a power cycle of each board shows on its console.

The console stays connected across the cycle, as with a console server: silence while
the board is off, the boot banner and a shell once it is on again.
"""

from __future__ import annotations

import httpx
import pytest

from labfleet.lab.layout import BOARDS
from tests.lab.conftest import VirtualLab
from tests.lab.console import Console

pytestmark = pytest.mark.lab


def pdu(lab: VirtualLab, action: str, outlet: int) -> None:
    """pdudaemon's HTTP API, as labfleet's pdudaemon power driver calls it."""
    response = httpx.get(
        f"{lab.pdu_url}/power/control/{action}",
        params={"hostname": lab.pdu_name, "port": outlet},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def powered(lab: VirtualLab, name: str) -> bool:
    return lab.status().part(name).running


@pytest.mark.parametrize("name", [b.name for b in BOARDS])
def test_power_cycle_through_pdudaemon_shows_on_the_console(lab: VirtualLab, name: str) -> None:
    board = lab.board(name)
    with Console(board.console_url) as console:
        console.drain()
        console.round_trip("before-cycle")
        console.drain()  # the prompt that follows the answer

        pdu(lab, "off", board.outlet)
        assert not powered(lab, name)
        assert console.read_for(1.0) == b"", "a board that is off printed something"

        pdu(lab, "on", board.outlet)
        assert powered(lab, name)
        console.expect(board.banner.encode(), timeout=60)
        console.expect(b"# ", timeout=10)
        console.round_trip("after-cycle")


def test_off_and_on_again_are_harmless(lab: VirtualLab) -> None:
    board = BOARDS[1]
    pdu(lab, "on", board.outlet)
    assert powered(lab, board.name)
    log = lab.paths.power_log(board).read_text().splitlines()
    assert log[-1].endswith("on (already on)")


def test_an_unknown_outlet_changes_nothing(lab: VirtualLab) -> None:
    before = [p.pid for p in lab.status().parts]
    pdu(lab, "off", 9)  # pdudaemon accepts it; the lab's power script refuses the outlet
    assert [p.pid for p in lab.status().parts] == before
