"""What the API offers, reached from the command line against a real ``labfleet serve``:
artifacts (list, show, a verified download, pins, retention), the audit log, maintenance
and decommissioning; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from labfleet.db.engine import create_engine, session_factory
from labfleet.schemas.artifacts import ArtifactType
from labfleet.schemas.auth import SYSTEM
from labfleet.services.artifacts import service as artifacts
from labfleet.storage import LocalStore
from tests.cli.test_cli_against_server import Server, admin_token, cli, data_dir, server
from tests.db.build_rows import build_job

__all__ = ["data_dir", "server"]  # the fixtures, used by name


async def _stored(server: Server, file: Path) -> int:
    engine = create_engine(server.env["LABFLEET_DATABASE_URL"])
    try:
        async with session_factory(engine)() as session:
            job = await build_job(session)
            made = await artifacts.store_artifact(
                session=session,
                store=LocalStore(Path(server.env["LABFLEET_DATA_DIR"]) / "artifacts"),
                build_job=job,
                path=file,
                name="Image",
                type=ArtifactType.kernel,
                actor=SYSTEM,
            )
            await session.commit()
            return made.id
    finally:
        await engine.dispose()


def test_artifacts_from_list_to_a_verified_download_pins_and_the_audit_log(
    server: Server, tmp_path: Path
) -> None:
    token = admin_token(server)
    image = tmp_path / "Image"
    image.write_bytes(b"kernel image " * 5000)
    ident = asyncio.run(_stored(server, image))

    code, out = cli(server, "artifacts", "list", "--architecture", "arm64", token=token)
    assert (code, "1 artifact(s)" in out, "Image" in out) == (0, True, True), out
    code, out = cli(server, "artifacts", "show", str(ident), "--json", token=token)
    assert json.loads(out)["size"] == image.stat().st_size
    got = tmp_path / "downloaded"
    code, out = cli(server, "artifacts", "download", str(ident), "-o", str(got), token=token)
    assert code == 0, out
    assert got.read_bytes() == image.read_bytes()
    assert not (tmp_path / "downloaded.part").exists()

    assert cli(server, "artifacts", "pin", str(ident), "--json", token=token)[0] == 0
    code, out = cli(server, "artifacts", "retention", "--keep-last", "1", "--json", token=token)
    assert (code, json.loads(out)["count"]) == (0, 0), out
    assert cli(server, "artifacts", "unpin", str(ident), token=token)[0] == 0

    code, out = cli(server, "audit", "list", "--object-type", "artifact", "--json", token=token)
    assert code == 0, out
    changes = json.loads(out)["items"]  # newest first: unpinned, pinned, stored
    assert [(e["object_id"], e["action"]) for e in changes] == [
        (ident, "update"),
        (ident, "update"),
        (ident, "create"),
    ]
    assert [e["after"]["pinned"] for e in changes[:2]] == [False, True]
    code, out = cli(server, "audit", "list", token=token)
    assert "change(s)" in out
    exported = tmp_path / "audit.jsonl"
    code, out = cli(server, "audit", "export", "-o", str(exported), token=token)
    assert code == 0, out
    entries = [json.loads(line) for line in exported.read_text().splitlines()]
    assert [e["object_id"] for e in entries if e["object_type"] == "artifact"] == [ident, ident, ident]


def test_maintenance_online_and_decommission_from_the_command_line(server: Server) -> None:
    token = admin_token(server)
    code, out = cli(
        server,
        "boards",
        "add",
        "--name",
        "rpi-9",
        "--type",
        "rpi4",
        "--arch",
        "arm64",
        "--serial",
        "SN9",
        "--console",
        "socket://127.0.0.1:9",
        "--json",
        token=token,
    )
    assert code == 0, out
    ident = str(json.loads(out)["id"])
    code, out = cli(server, "boards", "status", ident, "maintenance", "--json", token=token)
    assert (code, json.loads(out)["status"]["value"]) == (0, "maintenance"), out
    code, out = cli(server, "boards", "status", ident, "online", "--json", token=token)
    assert (code, json.loads(out)["status"]["value"]) == (0, "online"), out
    code, out = cli(server, "boards", "status", ident, "decommissioned", "--json", token=token)
    assert (code, json.loads(out)["status"]["value"]) == (0, "decommissioned"), out
    code, out = cli(server, "boards", "status", ident, "asleep", token=token)
    assert code == 2
