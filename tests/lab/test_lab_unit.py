"""What the lab writes and sends, checked without starting it: configurations and registration bodies."""

from __future__ import annotations

import gzip
import json
import os
import shlex
import subprocess
from pathlib import Path

import httpx
import pytest

from labfleet.errors import LabfleetError, NotFound, Unauthenticated
from labfleet.lab import consoles, initramfs, pdu, sshd
from labfleet.lab.boards import qemu_argv
from labfleet.lab.layout import BOARDS, board_named
from labfleet.lab.paths import LabPaths
from labfleet.lab.register import board_body, build_server_body, host_body, register
from labfleet.lab.up import down, up
from labfleet.schemas.boards import BoardCreate
from labfleet.schemas.build_servers import BuildServerCreate
from labfleet.schemas.hosts import HostCreate

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


@pytest.fixture
def paths(tmp_path: Path) -> LabPaths:
    p = LabPaths(state=tmp_path / "state", cache=tmp_path / "cache", assets=tmp_path / "assets")
    p.keys.mkdir(parents=True)
    p.private_key.write_text(KEY)
    return p


def test_boards_are_found_by_name_or_by_outlet() -> None:
    assert board_named("lab-x86").outlet == 1
    assert board_named("2").name == "lab-arm64"
    with pytest.raises(NotFound, match="no board or outlet '9'"):
        board_named("9")


def test_consoles_are_raw_tcp_and_rfc2217() -> None:
    assert [b.console_url for b in BOARDS] == [
        "socket://127.0.0.1:23001",
        "rfc2217://127.0.0.1:23002?ign_set_control",
    ]


def test_registration_bodies_are_what_the_api_accepts(paths: LabPaths) -> None:
    BuildServerCreate.model_validate(build_server_body(paths))
    HostCreate.model_validate(host_body(paths))
    for board in BOARDS:
        created = BoardCreate.model_validate(board_body(paths, board))
        assert created.console_url == board.console_url
        assert created.flash is not None and created.flash.driver == "dd"


def test_registration_takes_a_conflict_as_done(paths: LabPaths) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        assert request.headers["authorization"] == "Bearer t0ken"
        status = 409 if request.url.path.endswith("/hosts") else 201
        return httpx.Response(status, json={"detail": "taken"} if status == 409 else {"id": 1})

    done = register(paths, url="http://labfleet", token="t0ken", transport=httpx.MockTransport(answer))
    assert seen == ["/api/v1/build-servers", "/api/v1/hosts", "/api/v1/boards", "/api/v1/boards"]
    assert [(d.name, d.created) for d in done] == [
        ("lab-build", True),
        ("lab-kvm", False),
        ("lab-x86", True),
        ("lab-arm64", True),
    ]


def test_registration_names_what_failed(paths: LabPaths) -> None:
    def unauthorized(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"detail": "no token"})

    with pytest.raises(Unauthenticated, match=r"registering lab-build.*no token"):
        register(paths, url="http://labfleet", token=None, transport=httpx.MockTransport(unauthorized))

    def invalid(request: httpx.Request) -> httpx.Response:
        errors = [{"field": "body.address", "reason": "bad"}]
        return httpx.Response(422, json={"detail": "invalid", "errors": errors})

    with pytest.raises(LabfleetError, match=r"422 invalid \(body.address: bad\)"):
        register(paths, url="http://labfleet", token="t", transport=httpx.MockTransport(invalid))


def test_pdudaemon_runs_the_power_script_with_the_outlet(paths: LabPaths) -> None:
    config = pdu.config(paths)
    assert config["daemon"] == {
        "hostname": "127.0.0.1",
        "port": 23421,
        "listener": "http",
        "logging_level": "INFO",
    }
    lab_pdu = config["pdus"]["lab-pdu"]
    assert lab_pdu["driver"] == "localcmdline"
    # pdudaemon %-formats the command with the outlet, then runs it with a shell.
    words = shlex.split(lab_pdu["cmd_on"] % "2")
    assert words[-4:] == ["-m", "labfleet.lab.power", "2", "on"]
    assert f"LABFLEET_LAB_DIR={paths.state}" in words
    json.dumps(config)


def test_a_percent_sign_in_a_path_survives_pdudaemons_formatting(tmp_path: Path) -> None:
    odd = LabPaths(state=tmp_path / "100%", cache=tmp_path / "c", assets=tmp_path / "a")
    assert f"LABFLEET_LAB_DIR={odd.state}" in shlex.split(pdu.power_command(odd, "off") % "1")


def test_ser2net_serves_each_console_end(paths: LabPaths) -> None:
    text = consoles.ser2net_config(paths)
    assert "accepter: tcp(nodelay),127.0.0.1,23001" in text
    assert "accepter: telnet(rfc2217),tcp(nodelay),127.0.0.1,23002" in text
    for board in BOARDS:
        assert f"connector: serialdev,{paths.console_end(board)},115200n81,local" in text


def test_sshd_takes_keys_only(paths: LabPaths) -> None:
    lines = set(sshd.config(paths).splitlines())
    assert {"Port 23022", "ListenAddress 127.0.0.1", "UsePAM no", "PasswordAuthentication no"} <= lines
    assert f"AuthorizedKeysFile {paths.authorized_keys}" in lines


def test_boards_never_ask_for_kvm(paths: LabPaths) -> None:
    for board in BOARDS:
        argv = qemu_argv(paths, board)
        assert argv[argv.index("-accel") + 1] == "tcg"
        options = " ".join(argv).replace(str(paths.state), "").replace(str(paths.cache), "")
        assert "kvm" not in options
        assert f"console={board.console_device}" in argv[argv.index("-append") + 1]


def test_up_and_down_need_root(paths: LabPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabfleetError, match="`lab up` must run as root"):
        up(paths)
    with pytest.raises(LabfleetError, match="`lab down` must run as root"):
        down(paths)


@pytest.mark.lab  # mknod of /dev/console needs root, as `lab up` does
def test_boot_image_is_the_committed_tree_with_busybox_and_a_console(tmp_path: Path) -> None:
    tree = LabPaths.from_env().initramfs_tree
    image = initramfs.build(tree, Path("/bin/busybox"), tmp_path / "boot.img")
    listing = subprocess.run(
        ["cpio", "-itv", "--quiet"],
        input=gzip.decompress(image.read_bytes()),
        capture_output=True,
        check=True,
    ).stdout.decode()
    entries = {line.split()[-1]: line for line in listing.splitlines()}
    assert entries["init"].startswith("-rwxr-xr-x")
    assert entries["bin/busybox"].startswith("-rwxr-xr-x")
    assert entries["dev/console"].startswith("crw-------")
    assert "labfleet-lab: $board booted" in (tree / "init").read_text()
