"""Worker processes that start together: each says it is ready, all wait for one signal."""

from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _run(target: Callable[..., Any], args: tuple[Any, ...], go: str, out: Any) -> None:
    Path(go + f".ready.{os.getpid()}").touch()
    while not Path(go).exists():
        time.sleep(0.001)
    out.put(target(*args))


def run_together(
    target: Callable[..., Any], arg_sets: list[tuple[Any, ...]], scratch: Path
) -> tuple[float, list[Any]]:
    """``target(*args)`` in one spawned process per argument set, started at one signal.

    Returns the wall-clock seconds from the signal until the last one ended, and what each
    returned. ``target`` must be a module-level function (it is pickled by name).
    """
    ctx = multiprocessing.get_context("spawn")
    go = str(scratch / f"go-{uuid.uuid4().hex}")
    out = ctx.SimpleQueue()
    procs = [ctx.Process(target=_run, args=(target, args, go, out)) for args in arg_sets]
    for p in procs:
        p.start()
    while len(list(scratch.glob(Path(go).name + ".ready.*"))) < len(procs):
        time.sleep(0.01)
    t0 = time.perf_counter()
    Path(go).touch()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - t0
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        raise RuntimeError(f"worker processes failed: exit codes {bad}")
    return elapsed, [out.get() for _ in procs]
