"""Pipelines and environments through the API on both backends: what is refused before anything
moves (422 naming the field, nothing created), what is created, cancel and retry, history with
success rates, the log by offset.

Validates: 5.1, 6.1, 11.1, 11.2, 11.4, 17.1, 17.3, 17.4, 17.5
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import (
    Artifact,
    Board,
    BuildJob,
    Environment,
    Host,
    Pipeline,
    PipelineStage,
    Reservation,
)
from labfleet.db.repositories import pipelines as repo
from tests.api.test_builds_api import add_server

REPO = "https://git.example.org/kernel.git"
_n = itertools.count(1)


def plan(**fields: Any) -> dict[str, Any]:
    return {
        "repository_url": REPO,
        "branch": "main",
        "architecture": "x86_64",
        "environment_type": "qemu",
        "build": {
            "command": "make",
            "artifacts": [
                {"path": "out/{arch}/kernel", "type": "kernel"},
                {"path": "out/{arch}/initramfs.cpio.gz", "type": "initramfs"},
            ],
        },
        "tests": [{"name": "uname", "command": "uname -a"}, {"name": "true", "command": "true"}],
        **fields,
    }


async def count(session: AsyncSession, model: type[Any]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
async def server(session: AsyncSession) -> int:
    return await add_server(session, "b1", ("x86_64", "arm64"))


@pytest.mark.parametrize(
    ("change", "field", "detail"),
    [
        ({"architecture": "riscv64"}, "architecture", "no server has a toolchain for riscv64"),
        ({"branch": None}, None, "give a branch, a commit, or both"),
        ({"environment_type": "vm"}, "environment_type", "Input should be 'qemu' or 'board'"),
        ({"tests": []}, "tests", "at least 1 item"),
        ({"tests": [{"name": "a", "command": "ls\nrm -rf /"}]}, "tests.0.command", "one line"),
        ({"tests": [{"name": "a", "command": "x"}, {"name": "a", "command": "y"}]}, None, "repeated: a"),
        ({"boot": {"pattern": "(unclosed"}}, "boot.pattern", "not a regular expression"),
        ({"boot": {"timeout_s": 0}}, "boot.timeout_s", "greater than or equal to 5"),
        (
            {"build": {"command": "make", "artifacts": [{"path": "out/initramfs", "type": "initramfs"}]}},
            "build.artifacts",
            "a qemu pipeline boots a kernel",
        ),
        (
            {"build": {"command": "make", "artifacts": [{"path": "/etc/passwd", "type": "kernel"}]}},
            "build.artifacts.0.path",
            "relative",
        ),
    ],
)
async def test_a_pipeline_that_could_never_run_is_refused_and_nothing_is_created(
    client: httpx.AsyncClient,
    session: AsyncSession,
    server: int,
    change: dict[str, Any],
    field: str | None,
    detail: str,
) -> None:
    before = (
        await count(session, Pipeline),
        await count(session, PipelineStage),
        await count(session, BuildJob),
    )
    r = await client.post("/api/v1/pipelines", json=plan(**change))
    assert r.status_code == 422, r.text
    body = r.json()
    fields = [e.get("field") for e in body.get("errors", [])] or [body.get("field")]
    assert field is None or any(f is not None and f.startswith(field) for f in fields), body
    assert detail in r.text, body
    after = (
        await count(session, Pipeline),
        await count(session, PipelineStage),
        await count(session, BuildJob),
    )
    assert after == before


async def test_a_pipeline_is_queued_with_four_pending_stages_and_listed(
    client: httpx.AsyncClient, session: AsyncSession, server: int, as_role: dict[str, dict[str, str]]
) -> None:
    denied = await client.post("/api/v1/pipelines", json=plan(), headers=as_role["viewer"])
    assert denied.status_code == 403
    r = await client.post("/api/v1/pipelines", json=plan())
    assert r.status_code == 201, r.text
    p = r.json()
    assert r.headers["location"] == p["url"]
    assert p["status"] == {"value": "queued", "label": "Queued", "colour": "grey"}
    assert [(s["name"], s["status"]["value"], s["attempt"]) for s in p["stages"]] == [
        ("build", "pending", 0),
        ("deploy", "pending", 0),
        ("boot", "pending", 0),
        ("test", "pending", 0),
    ]
    assert (p["target"], p["environment_type"], p["tests"]) == ("auto", "qemu", [])
    assert await count(session, BuildJob) == 0  # the build is submitted when its stage starts
    listed = (await client.get("/api/v1/pipelines", params={"branch": "main"})).json()
    assert [i["id"] for i in listed["items"]] == [p["id"]]
    assert (await client.get("/api/v1/pipelines", params={"branch": "other"})).json()["count"] == 0
    # The log starts empty: offset 0, nothing yet.
    log = (await client.get(f"{p['url']}/logs")).json()
    assert (log["offset"], log["size"], log["data"], log["complete"]) == (0, 0, "", False)


async def test_cancel_of_a_queued_pipeline_skips_every_stage_and_retry_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, server: int
) -> None:
    p = (await client.post("/api/v1/pipelines", json=plan())).json()
    r = await client.post(f"{p['url']}/cancel")
    assert r.status_code == 202
    body = r.json()
    assert body["status"]["value"] == "cancelled"
    assert {s["status"]["value"] for s in body["stages"]} == {"skipped"}
    assert "cancelled by t-admin before it started" in (await client.get(f"{p['url']}/logs")).json()["data"]
    again = await client.post(f"{p['url']}/cancel")
    assert again.status_code == 409
    retry = await client.post(f"{p['url']}/retry", json={"stage": "build"})
    assert retry.status_code == 409


async def test_retry_resumes_from_the_failed_stage_and_keeps_the_earlier_results(
    client: httpx.AsyncClient, session: AsyncSession, server: int
) -> None:
    p = (await client.post("/api/v1/pipelines", json=plan())).json()
    # As the worker leaves a pipeline whose boot failed.
    await session.execute(update(Pipeline).where(Pipeline.id == p["id"]).values(status="failed"))
    for name, status in (
        ("build", "succeeded"),
        ("deploy", "succeeded"),
        ("boot", "failed"),
        ("test", "skipped"),
    ):
        await session.execute(
            update(PipelineStage)
            .where(PipelineStage.pipeline_id == p["id"], PipelineStage.name == name)
            .values(status=status, attempt=1, error="no boot" if status == "failed" else None)
        )
    await session.commit()
    wrong = await client.post(f"{p['url']}/retry", json={"stage": "deploy"})
    assert wrong.status_code == 409
    assert "only a failed or cancelled stage" in wrong.json()["detail"]
    unknown = await client.post(f"{p['url']}/retry", json={"stage": "flash"})
    assert unknown.status_code == 422
    r = await client.post(f"{p['url']}/retry", json={"stage": "boot"})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"]["value"] == "queued"
    assert [(s["name"], s["status"]["value"]) for s in body["stages"]] == [
        ("build", "succeeded"),
        ("deploy", "succeeded"),
        ("boot", "pending"),
        ("test", "pending"),
    ]
    assert [s["attempt"] for s in body["stages"]] == [1, 1, 1, 1]  # history kept; the next run counts on


async def test_history_gives_success_rates_by_repository_branch_and_architecture(
    client: httpx.AsyncClient, session: AsyncSession, server: int
) -> None:
    ids = [(await client.post("/api/v1/pipelines", json=plan())).json()["id"] for _ in range(4)]
    arm = (await client.post("/api/v1/pipelines", json=plan(architecture="arm64"))).json()["id"]
    for ident, status in zip(ids, ("succeeded", "succeeded", "failed", "cancelled"), strict=True):
        await session.execute(update(Pipeline).where(Pipeline.id == ident).values(status=status))
    await session.execute(update(Pipeline).where(Pipeline.id == arm).values(status="failed"))
    await session.commit()
    rows = (await client.get("/api/v1/pipelines/stats", params={"repository_url": REPO})).json()["items"]
    by_arch = {r["architecture"]: r for r in rows}
    assert by_arch["x86_64"] | {"success_rate": None} == {
        "repository_url": REPO,
        "branch": "main",
        "architecture": "x86_64",
        "total": 4,
        "succeeded": 2,
        "failed": 1,
        "cancelled": 1,
        "success_rate": None,
    }
    assert by_arch["x86_64"]["success_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert (by_arch["arm64"]["success_rate"], by_arch["arm64"]["total"]) == (0.0, 1)


async def test_the_log_reads_by_offset_and_by_stage(
    client: httpx.AsyncClient, session: AsyncSession, server: int
) -> None:
    p = (await client.post("/api/v1/pipelines", json=plan())).json()
    await repo.append_log_unheld(session, pipeline_id=p["id"], data=b"build line\n")
    await repo.append_log_unheld(session, pipeline_id=p["id"], data="boot: é\n".encode())
    await session.execute(
        update(PipelineStage)
        .where(PipelineStage.pipeline_id == p["id"], PipelineStage.name == "deploy")
        .values(log_start=11, log_end=20, status="succeeded")
    )
    await session.commit()
    whole = (await client.get(f"{p['url']}/logs")).json()
    assert (whole["data"], whole["size"], whole["next_offset"]) == ("build line\nboot: é\n", 20, 20)
    part = (await client.get(f"{p['url']}/logs", params={"stage": "deploy"})).json()
    assert (part["data"], part["size"], part["complete"]) == ("boot: é\n", 9, False)
    # From the middle of the stage's part, never cutting a character: é is two bytes.
    mid = (await client.get(f"{p['url']}/logs", params={"stage": "deploy", "offset": 6, "limit": 2})).json()
    assert mid["data"] == "é"
    past = await client.get(f"{p['url']}/logs", params={"offset": 999})
    assert past.status_code == 422
    assert past.json()["field"] == "offset"
    assert (await client.get(f"{p['url']}/logs", params={"stage": "test"})).json()["data"] == ""


# -- environments


async def add_build(session: AsyncSession, *, architecture: str, types: tuple[str, ...]) -> int:
    job = BuildJob(
        repository_url=REPO,
        branch="main",
        architecture=architecture,
        submitted_by="ci",
        status="succeeded",
        artifact_specs=[],
        decision={},
    )
    session.add(job)
    await session.flush()
    for t in types:
        n = next(_n)
        session.add(
            Artifact(
                sha256=f"{n:064x}",
                size=1024,
                name=f"{t}-{n}",
                type=t,
                build_job_id=job.id,
                repository_url=REPO,
                branch="main",
                commit=f"{n:040x}",
                architecture=architecture,
            )
        )
    await session.commit()
    return job.id


async def add_host(session: AsyncSession, name: str, **fields: Any) -> int:
    values: dict[str, Any] = {
        "cpu_cores": 4,
        "memory_mb": 4096,
        "storage_gb": 100.0,
        "native_architecture": "x86_64",
        "machine_types": {"x86_64": ["pc", "q35"], "arm64": ["virt"]},
        **fields,
    }
    host = Host(
        hostname=name,
        address=f"{name}.lab",
        ssh_user="root",
        libvirt_uri=f"qemu+ssh://root@{name}.lab/system",
        labels=[],
        **values,
    )
    session.add(host)
    await session.commit()
    return host.id


def env(build_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "kind": "qemu",
        "architecture": "x86_64",
        "artifacts": {"build_id": build_id},
        "requirements": {"vcpus": 2, "memory_mb": 1024},
        **fields,
    }


async def test_incompatible_artifacts_are_refused_before_anything_is_reserved(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await add_host(session, "kvm-1")
    board = Board(
        name="rpi-1", board_type="rpi4", architecture="arm64", serial_number="s1", labels=[], peripherals=[]
    )
    session.add(board)
    await session.commit()
    arm = await add_build(session, architecture="arm64", types=("kernel", "initramfs"))
    no_kernel = await add_build(session, architecture="x86_64", types=("initramfs",))
    only_dtb = await add_build(session, architecture="arm64", types=("dtb",))
    cases = [
        (env(arm), "artifacts", "is built for arm64, not x86_64"),
        (env(no_kernel), "artifacts", "no artifact of type kernel"),
        (
            env(arm, architecture="arm64", requirements={"machine": "q35"}),
            "requirements.machine",
            "no QEMU machine 'q35' for arm64",
        ),
        (env(only_dtb, kind="board", architecture="arm64"), "artifacts", "flashed with an image"),
        (
            env(arm, kind="board", architecture="arm64", target="rpi-1", requirements={"board_type": "bbb"}),
            "requirements.board_type",
            "is a rpi4, not a bbb",
        ),
        (env(arm, target="kvm-9", architecture="arm64"), "target", "no host named 'kvm-9'"),
        ({**env(arm), "artifacts": {"latest": True}}, "artifacts", "latest needs repository_url"),
    ]
    for body, field, detail in cases:
        r = await client.post("/api/v1/environments", json=body)
        assert r.status_code == 422, (body, r.text)
        problem = r.json()
        fields = [e.get("field") for e in problem.get("errors", [])] or [problem.get("field")]
        assert field in fields, (field, problem)
        assert detail in r.text, problem
    assert await count(session, Environment) == 0
    assert await count(session, Reservation) == 0


async def test_an_environment_reserves_the_chosen_host_and_release_frees_it(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    small = await add_host(session, "kvm-small", cpu_cores=2)
    big = await add_host(session, "kvm-big", cpu_cores=16, memory_mb=65536)
    build_id = await add_build(session, architecture="x86_64", types=("kernel", "initramfs", "other"))
    r = await client.post("/api/v1/environments", json=env(build_id), params={"explain": "true"})
    assert r.status_code == 201, r.text
    e = r.json()
    assert (e["status"]["value"], e["host_id"], e["host"], e["target"]) == ("pending", big, "kvm-big", "auto")
    assert set(e["artifacts"]) >= {"kernel", "initramfs"}
    assert e["decision"]["chosen_id"] == big
    held = await session.get(Reservation, e["reservation_id"])
    assert held is not None
    assert (held.host_id, held.vcpus, held.memory_mb, held.released_at) == (big, 2, 1024, None)

    # The small host is named: it is full, so the answer is 409 with the alternatives.
    await client.post(
        "/api/v1/reservations", json={"host_id": small, "vcpus": 2, "purpose": "someone else", "memory_mb": 1}
    )
    full = await client.post("/api/v1/environments", json=env(build_id, target="kvm-small"))
    assert full.status_code == 409, full.text

    released = await client.post(f"{e['url']}/release")
    assert released.status_code == 202
    assert released.json()["status"]["value"] == "releasing"  # the worker tears it down
    assert (await client.post(f"{e['url']}/release")).status_code == 409


async def test_nothing_free_now_is_409_with_alternatives(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    host = await add_host(session, "kvm-1")
    build_id = await add_build(session, architecture="x86_64", types=("kernel", "initramfs"))
    await client.post("/api/v1/reservations", json={"host_id": host, "vcpus": 4, "purpose": "full"})
    r = await client.post("/api/v1/environments", json=env(build_id))
    assert r.status_code == 409, r.text
    assert r.json()["alternatives"], r.json()
    assert await count(session, Environment) == 0
    before = await count(session, Reservation)
    assert before == 1
    never = await client.post("/api/v1/environments", json=env(build_id, requirements={"vcpus": 64}))
    assert never.status_code == 422
    assert await count(session, Reservation) == before
