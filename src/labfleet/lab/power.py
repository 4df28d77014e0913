"""``python -m labfleet.lab.power <board|outlet> on|off|state``: the switch behind the lab's PDU outlets.

pdudaemon's ``localcmdline`` driver runs this with the outlet number for each request
on the lab's PDU; it ignores the exit status and cannot ask for the state, so every
action is also logged in ``<state>/<board>/power.log`` and ``state`` is for people and
``lab status``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from labfleet.errors import LabfleetError
from labfleet.lab.boards import is_on, power_off, power_on
from labfleet.lab.layout import Board, board_named
from labfleet.lab.paths import LabPaths


def _log(paths: LabPaths, board: Board, line: str) -> None:
    if paths.board_dir(board).is_dir():
        with paths.power_log(board).open("a") as f:
            f.write(f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {line}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m labfleet.lab.power", description="Power a board of the virtual lab on or off."
    )
    parser.add_argument("board", help="board name (lab-x86) or outlet number on the lab's PDU (1)")
    parser.add_argument("action", choices=("on", "off", "state"))
    args = parser.parse_args(argv)
    paths = LabPaths.from_env()
    try:
        board = board_named(args.board)
    except LabfleetError as exc:
        print(f"labfleet lab power: {exc.message}", file=sys.stderr)
        return 2
    if args.action == "state":
        print("on" if is_on(paths, board) else "off")
        return 0
    try:
        changed = power_on(paths, board) if args.action == "on" else power_off(paths, board)
    except LabfleetError as exc:
        print(f"labfleet lab power {board.name} {args.action}: {exc.message}", file=sys.stderr)
        _log(paths, board, f"{args.action} failed: {exc.message}")
        return 1
    _log(paths, board, args.action if changed else f"{args.action} (already {args.action})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
