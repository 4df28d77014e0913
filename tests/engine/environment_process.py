"""An environment worker in a process of its own, for the tests that make processes share one
database: its deploys are scripted (they take ``deploy_s`` and reach no device) and what it
does is written to its record file, one line each: ``deployed <host>``, ``cancelled <host>``,
``removed <host>``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from labfleet.db.engine import create_engine, session_factory
from labfleet.engine.environments import EnvironmentWorker
from labfleet.secretbox import SecretBox
from labfleet.services.core.events import EventBus
from tests.engine.test_pipeline_worker import Script, scripted


class Recorded(list[str]):
    """A list that also writes each item to a file as it is appended."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__()
        self._path = path
        self._what = what

    def append(self, item: Any) -> None:
        super().append(item)
        with self._path.open("a") as out:
            out.write(f"{self._what} {item}\n")


async def _work(url: str, name: str, key: bytes, record: Path, stop: Path, deploy_s: float) -> None:
    engine = create_engine(url)
    sessions = session_factory(engine)
    bus = EventBus()
    script = Script(
        deploy_s=deploy_s,
        deployed=Recorded(record, "deployed"),
        cancelled=Recorded(record, "cancelled"),
        removed=Recorded(record, "removed"),
    )
    try:
        provisioner = scripted(script, sessions, bus, SecretBox(key))
        worker = EnvironmentWorker(
            sessions=sessions,
            bus=bus,
            provisioner=provisioner,
            lease_seconds=3.0,
            poll_seconds=0.2,
            name=name,
        )
        task = asyncio.create_task(worker.run())
        record.with_suffix(".ready").touch()
        await asyncio.to_thread(wait_for, stop, 600.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await bus.close()
        await engine.dispose()


def run(url: str, name: str, key: bytes, record: str, stop: str, deploy_s: float) -> None:
    """The process entry point (picklable for the 'spawn' start method)."""
    asyncio.run(_work(url, name, key, Path(record), Path(stop), deploy_s))


def wait_for(path: Path, timeout: float = 60.0, text: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or (text is not None and text not in path.read_text()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not {'say ' + text if text else 'appear'}")
        time.sleep(0.02)
