"""``labfleet pipelines run --follow`` end to end in the virtual lab: a real ``labfleet serve``
(device checks and engine on) with the lab registered through its API builds the lab's repository
on the lab's build server, deploys to a libvirt VM on the lab's host (x86_64) or flashes a
pdudaemon-powered board (arm64), boots it, runs the plan's tests on its console and reports.
A second run with a deliberately failing test reports exactly that test, and the pipeline, as
failed. Nothing stays reserved, defined or copied afterwards.

Validates: 5.1-5.5, 6.1-6.5, 11.1, 11.2, 17.1-17.4
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labfleet.lab.register import register
from tests.cli.test_cli_against_server import Server, admin_token, cli
from tests.lab.conftest import VirtualLab, on

pytestmark = pytest.mark.lab

PLANS = Path(__file__).resolve().parents[2] / "lab" / "plans"


@pytest.fixture
def server(lab: VirtualLab, tmp_path: Path, fresh_db_url: str) -> Iterator[Server]:
    s = Server(tmp_path / "data", fresh_db_url)
    s.env |= {
        "LABFLEET_DEVICE_CHECKS": "true",  # registration reaches the lab's devices
        "LABFLEET_DEPLOY_CONSOLE_PORT_FIRST": "24300",  # apart from other tests' guests
    }
    with s:
        yield s


@pytest.fixture
def token(server: Server, lab: VirtualLab) -> str:
    token = admin_token(server)
    done = register(lab.paths, url=server.url, token=token)
    assert [r.name for r in done] == ["lab-build", "lab-kvm", "lab-x86", "lab-arm64"]
    return token


def run(server: Server, token: str, lab: VirtualLab, arch: str, kind: str, plan: Path) -> tuple[int, str]:
    return cli(
        server, "pipelines", "run", "--repo", lab.repo_url, "--branch", lab.repo_branch, "--arch", arch,
        "--env-type", kind, "--target", "auto", "--test-plan", str(plan), "--follow", token=token,
    )  # fmt: skip


def shown(server: Server, token: str, what: str, *args: str) -> Any:
    code, out = cli(server, what, *args, "--json", token=token)
    assert code == 0, out
    return json.loads(out)


def failing(plan: Path, tmp_path: Path) -> Path:
    """The plan with one more test that fails: the file /nonexistent is not there."""
    text = plan.read_text() + '\n[[tests]]\nname = "deliberately-failing"\ncommand = "test -e /nonexistent"\n'
    out = tmp_path / f"failing-{plan.name}"
    out.write_text(text)
    return out


def assert_nothing_left(server: Server, token: str) -> None:
    envs = shown(server, token, "envs", "list")
    assert {e["status"]["value"] for e in envs["items"]} <= {"released", "failed"}, envs
    reservations = shown(server, token, "reservations", "list")
    assert reservations["count"] == 0, reservations
    domains = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--all", "--name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    ours = {e["domain_name"] for e in envs["items"] if e["domain_name"]}
    assert not ours & set(domains), domains


@on("sqlite")
def test_x86_64_on_the_libvirt_host_then_a_failing_test(
    server: Server, token: str, lab: VirtualLab, tmp_path: Path
) -> None:
    code, out = run(server, token, lab, "x86_64", "qemu", PLANS / "qemu.toml")
    assert code == 0, out
    for name in ("architecture", "hello-runs", "built-from-a-commit", "proc-mounted"):
        assert f"{name}" in out and "PASS" in out, out
    assert "labfleet-hello: built for x86_64 from" in out  # the console, streamed into the log
    pipelines = shown(server, token, "pipelines", "list")
    first = pipelines["items"][0]
    assert first["status"]["value"] == "succeeded"
    assert [s["status"]["value"] for s in first["stages"]] == ["succeeded"] * 4
    assert first["stages"][1]["resources"]["host"] == "lab-kvm"
    assert [(t["name"], t["status"]["value"]) for t in first["tests"]] == [
        ("architecture", "passed"),
        ("hello-runs", "passed"),
        ("built-from-a-commit", "passed"),
        ("proc-mounted", "passed"),
    ]
    assert_nothing_left(server, token)

    code, out = run(server, token, lab, "x86_64", "qemu", failing(PLANS / "qemu.toml", tmp_path))
    assert code == 1, out
    assert "deliberately-failing" in out
    second = shown(server, token, "pipelines", "list")["items"][0]
    assert second["id"] != first["id"]
    assert second["status"]["value"] == "failed"
    assert second["error"] == "stage test failed: 1 of 5 test(s) failed: deliberately-failing"
    assert {t["name"]: t["status"]["value"] for t in second["tests"]} == {
        "architecture": "passed",
        "hello-runs": "passed",
        "built-from-a-commit": "passed",
        "proc-mounted": "passed",
        "deliberately-failing": "failed",
    }
    stats = shown(server, token, "pipelines", "stats")["items"]
    assert [(r["architecture"], r["succeeded"], r["failed"], r["success_rate"]) for r in stats] == [
        ("x86_64", 1, 1, 0.5)
    ]
    assert_nothing_left(server, token)

    # A standalone environment from the latest build of the branch: deployed, booted, then
    # released by the environment worker.
    code, out = cli(
        server, "envs", "create", "--kind", "qemu", "--arch", "x86_64", "--latest", "--repo", lab.repo_url,
        "--branch", lab.repo_branch, "--vcpus", "1", "--memory-mb", "256",
        "--boot-pattern", r"labfleet-lab: .* booted", "--wait", "--json", token=token,
    )  # fmt: skip
    assert code == 0, out
    env = json.loads(out)
    ready = (env["status"]["value"], env["host"], env["build_job_id"])
    assert ready == ("ready", "lab-kvm", second["build_job_id"])
    assert [s["step"] for s in env["steps"]][:3] == ["transfer", "define", "boot"]
    domains = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--name"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert env["domain_name"] in domains  # running
    code, out = cli(server, "envs", "release", str(env["id"]), token=token)
    assert code == 0, out
    deadline = time.monotonic() + 60
    while shown(server, token, "envs", "show", str(env["id"]))["status"]["value"] != "released":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert_nothing_left(server, token)


@pytest.fixture
def board_image(lab: VirtualLab) -> Iterator[None]:
    """lab-arm64's boot image as it was, put back at the end (the pipeline flashes its own)."""
    device = lab.boot_image(lab.board("lab-arm64"))
    original = device.read_bytes()
    try:
        yield
    finally:
        device.write_bytes(original)


@on("sqlite")
def test_arm64_on_a_pdudaemon_powered_board(
    server: Server, token: str, lab: VirtualLab, board_image: None, tmp_path: Path
) -> None:
    code, out = run(server, token, lab, "arm64", "board", PLANS / "board.toml")
    assert code == 0, out
    p = shown(server, token, "pipelines", "list")["items"][0]
    assert p["status"]["value"] == "succeeded", p["error"]
    assert p["stages"][1]["resources"]["board"] == "lab-arm64"
    assert {t["status"]["value"] for t in p["tests"]} == {"passed"}
    assert len(p["tests"]) == 4
    assert_nothing_left(server, token)


@on("postgresql")
def test_a_serve_killed_mid_boot_holds_nothing_once_the_next_one_takes_over(
    lab: VirtualLab, tmp_path: Path, fresh_db_url: str
) -> None:
    """SIGKILL of ``labfleet serve`` while the VM boots: the next ``serve`` takes the pipeline
    over after its lease, fails the boot stage with the reason, and removes the domain, its
    files and the reservation the dead process left behind."""
    data = tmp_path / "data"
    env = {
        "LABFLEET_DEVICE_CHECKS": "true",
        "LABFLEET_PIPELINE_LEASE_SECONDS": "4",
        "LABFLEET_PIPELINE_HEARTBEAT_SECONDS": "1",
        "LABFLEET_DEPLOY_CONSOLE_PORT_FIRST": "24400",
    }
    plan = tmp_path / "slow-boot.toml"
    # A pattern the console never shows: the boot stage runs until the process is killed.
    plan.write_text((PLANS / "qemu.toml").read_text().replace("labfleet-lab: .* booted", "never printed"))
    first = Server(data, fresh_db_url)
    first.env |= env
    with first:
        token = admin_token(first)
        register(lab.paths, url=first.url, token=token)
        code, out = cli(
            first, "pipelines", "run", "--repo", lab.repo_url, "--branch", lab.repo_branch,
            "--arch", "x86_64", "--env-type", "qemu", "--test-plan", str(plan), "--json", token=token,
        )  # fmt: skip
        assert code == 0, out
        ident = json.loads(out)["id"]
        deadline = time.monotonic() + 120
        while True:
            p = shown(first, token, "pipelines", "show", str(ident))
            if p["stages"][2]["status"]["value"] == "running" and "domain" in p["stages"][2]["resources"]:
                break
            assert time.monotonic() < deadline, p
            time.sleep(0.5)
        domain = p["stages"][2]["resources"]["domain"]
        first.proc.kill()  # no cleanup of any kind
        first.proc.wait(timeout=15)
    listed = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--name"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert domain in listed  # the dead process left it running

    second = Server(data, fresh_db_url)
    second.env |= env
    with second:
        deadline = time.monotonic() + 90
        while (p := shown(second, token, "pipelines", "show", str(ident)))["status"]["value"] == "running":
            assert time.monotonic() < deadline, p
            time.sleep(0.5)
        assert p["status"]["value"] == "failed"
        assert [s["status"]["value"] for s in p["stages"]] == ["succeeded", "succeeded", "failed", "skipped"]
        assert p["stages"][2]["error"].startswith("interrupted: the labfleet process running it")
        assert_nothing_left(second, token)
        code, log = cli(second, "pipelines", "logs", str(ident), token=token)
        assert code == 0
        assert "taken over by" in log and f"destroyed and undefined {domain}" in log
