"""The build server: the lab's sshd takes the lab's key, and real toolchains are installed."""

from __future__ import annotations

import asyncssh
import pytest

from tests.lab.conftest import VirtualLab

pytestmark = pytest.mark.lab


async def connect(lab: VirtualLab, username: str) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        lab.host,
        lab.ssh_port,
        username=username,
        client_keys=[str(lab.private_key)],
        known_hosts=str(lab.known_hosts),  # the host key is pinned, as labfleet pins it
        # Generous: this runs while the boards of a just-started lab still boot on two cores.
        connect_timeout=60,
    )


async def test_build_user_logs_in_with_the_lab_key_and_cross_compiles(lab: VirtualLab) -> None:
    async with await connect(lab, lab.build_user) as conn:
        who = await conn.run("id -un; echo $SHELL", check=True, timeout=60)
        assert who.stdout == f"{lab.build_user}\n/bin/sh\n"
        gcc = await conn.run("aarch64-linux-gnu-gcc --version", check=True, timeout=60)
        assert str(gcc.stdout).startswith("aarch64-linux-gnu-gcc")
        source = "int main(void) { return 0; }\n"
        built = await conn.run(
            'cd "$(mktemp -d)" && cat > t.c && aarch64-linux-gnu-gcc -o t t.c && od -An -c -N4 t',
            input=source,
            check=True,
            timeout=120,
        )
        assert "E   L   F" in str(built.stdout)
        tools = await conn.run("for t in gcc make git; do command -v $t; done", check=True, timeout=60)
        assert len(str(tools.stdout).split()) == 3


async def test_root_logs_in_with_the_lab_key(lab: VirtualLab) -> None:
    async with await connect(lab, "root") as conn:
        assert (await conn.run("id -u", check=True, timeout=60)).stdout == "0\n"


async def test_no_password_login(lab: VirtualLab) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.connect(
            lab.host,
            lab.ssh_port,
            username=lab.build_user,
            password="labbuild",
            client_keys=None,
            known_hosts=str(lab.known_hosts),
            connect_timeout=10,
        )
