"""SSH fixtures for the device layer's tests: an in-process SSH server on loopback that runs
commands with /bin/sh, a key it accepts, and a pool with short timeouts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from labfleet.hw.ssh import SshPool, SshRunner, SshSettings, SshTarget
from labfleet.hw.ssh_server import LocalSshServer, new_private_key, public_key_of

# Short enough that tests of retries and timeouts take a fraction of a second.
FAST = SshSettings(connect_timeout=3.0, connect_attempts=3, backoff_initial=0.05, backoff_max=0.2)


@pytest.fixture(scope="session")
def client_key() -> str:
    return new_private_key()


@pytest.fixture
async def ssh_server(client_key: str) -> AsyncIterator[LocalSshServer]:
    async with LocalSshServer(authorized_keys=[public_key_of(private_key=client_key)]) as server:
        yield server


@pytest.fixture
def ssh_target(ssh_server: LocalSshServer, client_key: str) -> SshTarget:
    """The server as registration leaves it: reached with a key, its host key pinned."""
    return SshTarget(
        host=ssh_server.host,
        port=ssh_server.port,
        username="ci",
        private_key=client_key,
        host_key=ssh_server.host_key,
    )


@pytest.fixture
async def ssh_pool() -> AsyncIterator[SshPool]:
    async with SshPool(settings=FAST) as pool:
        yield pool


@pytest.fixture
def ssh_runner(ssh_pool: SshPool, ssh_target: SshTarget) -> SshRunner:
    return SshRunner(pool=ssh_pool, target=ssh_target)
