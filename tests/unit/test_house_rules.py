"""The house's size rules, outside migrations: no file over 400 lines and no function over
60, unless a comment directly above it (``# long: why``) says why it reads best whole."""

from __future__ import annotations

import ast
from pathlib import Path

import labfleet

SRC = Path(labfleet.__file__).parent
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)


def test_no_file_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in sources()
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert long == {}


def _excused(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return first >= 2 and lines[first - 2].strip().startswith("# long:")


def test_no_function_is_over_60_lines_unless_it_says_why() -> None:
    long = {}
    for path in sources():
        text = path.read_text()
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES and not _excused(lines, node):
                    long[f"{path.relative_to(SRC)}:{node.lineno} {node.name}"] = size
    assert long == {}
