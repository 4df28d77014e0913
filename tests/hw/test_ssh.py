"""The SSH driver against a real SSH server in this process: commands, streams, kills, the pool,
host keys and every way a connection fails.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import asyncssh
import pytest

from labfleet.errors import (
    AuthFailed,
    CommandFailed,
    DeviceError,
    HostKeyChanged,
    Invalid,
    Timeout,
    Unreachable,
)
from labfleet.hw.commands import CommandRunner
from labfleet.hw.ssh import SshPool, SshRunner, SshSettings, SshTarget, fingerprint, open_connection
from labfleet.hw.ssh_exec import kill_command
from labfleet.hw.ssh_server import LocalSshServer, new_private_key, public_key_of
from tests.helpers import free_port
from tests.hw.conftest import FAST


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _start_time(pid: int) -> str:
    """Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


async def _gone(pids: list[int], *, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


class CountingConnector:
    """The pool's real connector, recording when each attempt started and whether one failed."""

    def __init__(self) -> None:
        self.started: list[float] = []
        self.failed = asyncio.Event()

    async def __call__(
        self, *, target: SshTarget, settings: SshSettings, host_key: str | None
    ) -> asyncssh.SSHClientConnection:
        self.started.append(time.monotonic())
        try:
            return await open_connection(target=target, settings=settings, host_key=host_key)
        except BaseException:
            self.failed.set()
            raise


# --- commands ---------------------------------------------------------------------------


async def test_a_command_returns_its_output_and_exit_status(ssh_runner: SshRunner) -> None:
    # Validates: 1.2
    result = await ssh_runner.run("echo out; echo err >&2; exit 3", timeout=10, check=False)
    assert (result.exit_status, result.stdout, result.stderr) == (3, "out\n", "err\n")


async def test_a_failing_command_raises_command_failed_with_its_stderr(ssh_runner: SshRunner) -> None:
    with pytest.raises(CommandFailed) as failed:
        await ssh_runner.run("echo 'no such board' >&2; exit 4", timeout=10)
    assert failed.value.exit_status == 4
    assert "no such board" in failed.value.stderr
    assert ssh_runner.where in failed.value.message


async def test_the_runner_names_user_host_and_port(ssh_runner: SshRunner, ssh_server: LocalSshServer) -> None:
    runner: CommandRunner = ssh_runner
    assert runner.where == f"ci@127.0.0.1:{ssh_server.port}"


async def test_a_command_reading_stdin_sees_end_of_file_instead_of_hanging(ssh_runner: SshRunner) -> None:
    result = await ssh_runner.run("cat; echo done", timeout=10)
    assert result.stdout == "done\n"


async def test_a_command_killed_by_a_signal_exits_with_128_plus_the_signal(ssh_runner: SshRunner) -> None:
    result = await ssh_runner.run("kill -s KILL $$", timeout=10, check=False)
    assert result.exit_status == 137


async def test_large_output_and_multibyte_characters_arrive_intact(ssh_runner: SshRunner) -> None:
    # 300 000 two-byte characters: chunk boundaries fall inside characters.
    result = await ssh_runner.run("yes é | head -n 100000 | tr -d '\\n'; yes ü | head -n 200000", timeout=30)
    assert result.stdout == "é" * 100_000 + "ü\n" * 200_000


async def test_quoting_reaches_the_remote_shell_unchanged(ssh_runner: SshRunner) -> None:
    result = await ssh_runner.run("""printf '%s|' "a b" 'c"d' "e'f" '$HOME'""", timeout=10)
    assert result.stdout == """a b|c"d|e'f|$HOME|"""


async def test_what_a_chatty_login_shell_prints_first_is_passed_on_and_kills_still_work(
    ssh_pool: SshPool, client_key: str
) -> None:
    async with LocalSshServer(
        authorized_keys=[public_key_of(private_key=client_key)], login_output="Welcome to build-7!\n"
    ) as server:
        runner = SshRunner(
            pool=ssh_pool,
            target=SshTarget(host=server.host, port=server.port, username="ci", private_key=client_key),
        )
        assert (await runner.run("echo mine", timeout=10)).stdout == "Welcome to build-7!\nmine\n"
        async with runner.stream("echo $$; exec sleep 300", timeout=60) as proc:
            seen = ""
            async for out in proc:
                seen += out.text
                if pids := [int(line) for line in seen.splitlines() if line.isdigit()]:
                    break
        assert seen.startswith("Welcome to build-7!\n")
        assert await _gone(pids)


# --- streaming ----------------------------------------------------------------------------


async def test_output_is_delivered_while_the_command_still_runs(
    ssh_runner: SshRunner, tmp_path: Path
) -> None:
    # Validates: 3.4
    go_on = tmp_path / "go-on"
    command = f"echo first; while [ ! -e {go_on} ]; do sleep 0.02; done; echo second >&2; exit 5"
    seen: list[tuple[str, str]] = []
    async with ssh_runner.stream(command, timeout=20) as proc:
        async for out in proc:
            seen.append((out.stream, out.text))
            # The command waits for this file, so "first" can only have come while it ran.
            go_on.touch()
    assert seen == [("stdout", "first\n"), ("stderr", "second\n")]
    assert proc.exit_status == 5


async def test_a_command_past_its_timeout_is_killed_with_its_whole_process_group(
    ssh_pool: SshPool, client_key: str, tmp_path: Path
) -> None:
    # Validates: 3.5
    # Under sshd the command's shell leads a session of its own; some servers leave it in
    # theirs, and then the driver starts it under setsid. Both must end with nothing left.
    for new_session in (True, False):
        pids = tmp_path / f"pids-{new_session}"
        async with LocalSshServer(
            authorized_keys=[public_key_of(private_key=client_key)], new_session=new_session
        ) as server:
            runner = SshRunner(
                pool=ssh_pool,
                target=SshTarget(host=server.host, port=server.port, username="ci", private_key=client_key),
            )
            command = (
                f"echo $$ >{pids}; sh -c 'sleep 300' & echo $! >>{pids}; sleep 300 & echo $! >>{pids}; wait"
            )
            started = time.monotonic()
            with pytest.raises(Timeout, match=r"did not finish within 0\.5 s"):
                await runner.run(command, timeout=0.5)
            assert time.monotonic() - started < 3
            remote = [int(p) for p in pids.read_text().split()]
            assert len(remote) == 3
            # Killed before the server went away: the kill, not the clean-up, did it.
            assert await _gone(remote), f"still running: {[p for p in remote if _alive(p)]}"


async def test_the_kill_spares_a_process_that_took_over_the_id_of_a_finished_command(
    ssh_runner: SshRunner,
) -> None:
    # Validates: 3.5
    # A session leader of someone else's, as if it had been handed a finished command's id.
    bystander = await asyncio.create_subprocess_exec("sleep", "300", start_new_session=True)
    try:
        start_time = _start_time(bystander.pid)
        await ssh_runner.run(
            kill_command(pgid=bystander.pid, start_time=str(int(start_time) - 1)), timeout=10
        )
        assert _alive(bystander.pid)
        await ssh_runner.run(kill_command(pgid=bystander.pid, start_time=start_time), timeout=10)
        assert await asyncio.wait_for(bystander.wait(), 10) == -9
    finally:
        if bystander.returncode is None:
            bystander.kill()
            await bystander.wait()


async def test_cancelling_a_stream_kills_the_remote_command(ssh_runner: SshRunner) -> None:
    # Validates: 3.5
    pid: list[int] = []
    running = asyncio.Event()

    async def follow() -> None:
        async with ssh_runner.stream("echo $$; exec sleep 300", timeout=60) as proc:
            async for out in proc:
                pid.append(int(out.text))
                running.set()

    task = asyncio.create_task(follow())
    await running.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _gone(pid)


async def test_leaving_a_stream_early_kills_the_remote_command(ssh_runner: SshRunner) -> None:
    async with ssh_runner.stream("echo $$; exec sleep 300", timeout=60) as proc:
        async for out in proc:
            pid = int(out.text)
            break
    assert proc.exit_status is None
    assert await _gone([pid])


# --- the pool -----------------------------------------------------------------------------


async def test_one_connection_serves_many_commands_including_concurrent_ones(
    ssh_runner: SshRunner, ssh_server: LocalSshServer
) -> None:
    for i in range(10):
        assert (await ssh_runner.run(f"echo {i}", timeout=10)).stdout == f"{i}\n"
    # More at once than the sessions one connection may carry: they wait their turn.
    results = await asyncio.gather(*(ssh_runner.run(f"echo {i}", timeout=20) for i in range(30)))
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(30)]
    assert ssh_server.accepted == 1


async def test_the_pool_reconnects_after_the_server_drops_the_connection(
    ssh_runner: SshRunner, ssh_server: LocalSshServer
) -> None:
    assert (await ssh_runner.run("echo before", timeout=10)).stdout == "before\n"
    ssh_server.drop_connections()
    assert (await ssh_runner.run("echo after", timeout=10)).stdout == "after\n"
    assert ssh_server.accepted == 2


async def test_the_pool_reconnects_when_the_server_comes_back_after_a_restart(
    ssh_runner: SshRunner, ssh_server: LocalSshServer
) -> None:
    await ssh_runner.run("true", timeout=10)
    await ssh_server.stop()
    with pytest.raises(Unreachable, match="connection refused"):
        await ssh_runner.run("true", timeout=10)
    await ssh_server.start()
    assert (await ssh_runner.run("echo back", timeout=10)).stdout == "back\n"


async def test_refused_connections_are_retried_with_growing_delays(ssh_target: SshTarget) -> None:
    # Validates: 1.2
    connector = CountingConnector()
    target = replace(ssh_target, port=free_port())
    settings = replace(FAST, connect_attempts=4, backoff_initial=0.1, backoff_max=10)
    async with SshPool(settings=settings, connector=connector) as pool:
        with pytest.raises(Unreachable, match=r"connection refused \(after 4 attempts\)"):
            await SshRunner(pool=pool, target=target).run("true", timeout=30)
    gaps = [b - a for a, b in zip(connector.started, connector.started[1:], strict=False)]
    assert len(connector.started) == 4
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4


async def test_commands_waiting_on_a_failing_connection_share_its_outcome(ssh_target: SshTarget) -> None:
    # Ten commands for a machine that is down wait for one round of attempts, not ten.
    connector = CountingConnector()
    target = replace(ssh_target, port=free_port())
    async with SshPool(settings=FAST, connector=connector) as pool:
        runner = SshRunner(pool=pool, target=target)
        outcomes = await asyncio.gather(
            *(runner.run("true", timeout=30) for _ in range(10)), return_exceptions=True
        )
    assert all(isinstance(o, Unreachable) and "connection refused" in o.message for o in outcomes)
    assert len(connector.started) == FAST.connect_attempts


async def test_a_server_that_comes_up_during_backoff_is_reached(client_key: str) -> None:
    port = free_port()
    server = LocalSshServer(authorized_keys=[public_key_of(private_key=client_key)], port=port)
    connector = CountingConnector()

    async def start_after_first_refusal() -> None:
        await connector.failed.wait()
        await server.start()

    starting = asyncio.create_task(start_after_first_refusal())
    target = SshTarget(host="127.0.0.1", port=port, username="ci", private_key=client_key)
    try:
        async with SshPool(settings=replace(FAST, backoff_initial=0.3), connector=connector) as pool:
            result = await SshRunner(pool=pool, target=target).run("echo up", timeout=30)
    finally:
        await starting
        await server.stop()
    assert result.stdout == "up\n"
    assert len(connector.started) == 2


class FreezingProxy:
    """A TCP relay to the SSH server that can stop relaying without closing anything: a cable
    pulled, a machine hung, a firewall dropping packets.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.frozen = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FreezingProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.frozen.is_set():
            return  # a hung machine accepts nothing new either
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._copy(src, dst))
            self._tasks.add(task)

    async def _copy(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while data := await src.read(65536):
            if self.frozen.is_set():
                await asyncio.Event().wait()  # swallow everything from now on
            dst.write(data)
            await dst.drain()


async def test_a_peer_that_stops_answering_is_dropped_by_keepalive_and_reconnected(
    ssh_server: LocalSshServer, ssh_target: SshTarget
) -> None:
    settings = replace(FAST, keepalive_interval=0.2, keepalive_count_max=2, connect_timeout=0.5)
    async with FreezingProxy(ssh_server.port) as proxy, SshPool(settings=settings) as pool:
        runner = SshRunner(pool=pool, target=replace(ssh_target, port=proxy.port))
        await runner.run("true", timeout=10)
        started = time.monotonic()
        async with runner.stream("sleep 30", timeout=60) as proc:
            proxy.frozen.set()
            with pytest.raises(Unreachable, match="connection lost"):
                await proc.wait()
        # Noticed by keepalive, long before the command's own timeout.
        assert time.monotonic() - started < 5
        proxy.frozen.clear()
        assert (await runner.run("echo again", timeout=10)).stdout == "again\n"
    assert ssh_server.accepted == 2


# --- connection failures ------------------------------------------------------------------


async def test_a_key_the_server_does_not_accept_is_auth_failed_and_not_retried(ssh_target: SshTarget) -> None:
    # Validates: 1.2
    connector = CountingConnector()
    target = replace(ssh_target, private_key=new_private_key())
    async with SshPool(settings=FAST, connector=connector) as pool:
        with pytest.raises(AuthFailed, match="authentication failed"):
            await SshRunner(pool=pool, target=target).run("true", timeout=10)
    assert len(connector.started) == 1


async def test_password_login_works_and_a_wrong_password_is_auth_failed() -> None:
    # Validates: 1.2
    async with LocalSshServer(password="s3cret") as server, SshPool(settings=FAST) as pool:
        good = SshTarget(host=server.host, port=server.port, username="ci", password="s3cret")
        assert (await SshRunner(pool=pool, target=good).run("echo in", timeout=10)).stdout == "in\n"
        with pytest.raises(AuthFailed):
            await SshRunner(pool=pool, target=replace(good, password="guess")).run("true", timeout=10)


async def test_an_unused_port_is_unreachable(ssh_target: SshTarget, ssh_pool: SshPool) -> None:
    # Validates: 1.2
    with pytest.raises(Unreachable, match=r"ci@127\.0\.0\.1:\d+: connection refused"):
        await ssh_pool.host_key(replace(ssh_target, port=free_port()), timeout=10)


async def test_a_name_that_does_not_resolve_is_unreachable_at_once(ssh_target: SshTarget) -> None:
    # Validates: 1.2
    connector = CountingConnector()
    async with SshPool(settings=FAST, connector=connector) as pool:
        with pytest.raises(Unreachable, match=r"no-such-host\.invalid:22: name not resolved"):
            await pool.host_key(replace(ssh_target, host="no-such-host.invalid", port=22), timeout=10)
    assert len(connector.started) == 1


async def test_a_server_that_never_answers_times_out(ssh_target: SshTarget) -> None:
    # Validates: 1.2
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    settings = replace(FAST, connect_timeout=0.3, connect_attempts=2)
    try:
        async with SshPool(settings=settings) as pool:
            started = time.monotonic()
            with pytest.raises(Timeout, match="timed out"):
                await pool.host_key(replace(ssh_target, port=port), timeout=10)
            assert time.monotonic() - started < 2
    finally:
        listener.close()
        await listener.wait_closed()


# --- host keys ----------------------------------------------------------------------------


async def test_first_contact_returns_the_servers_host_key_for_registration_to_store(
    ssh_target: SshTarget, ssh_server: LocalSshServer, ssh_pool: SshPool
) -> None:
    # Validates: 1.2
    unpinned = replace(ssh_target, host_key=None)
    host_key = await ssh_pool.host_key(unpinned, timeout=10)
    assert host_key == ssh_server.host_key
    assert host_key.startswith("ssh-ed25519 ")
    # Stored and used again, it is accepted.
    assert await ssh_pool.host_key(replace(ssh_target, host_key=host_key), timeout=10) == host_key


async def test_a_changed_host_key_is_refused_naming_both_keys(
    ssh_target: SshTarget, client_key: str, ssh_pool: SshPool
) -> None:
    # Validates: 1.2
    # The same address answered by a reinstalled machine: another key, maybe another type.
    for algorithm in ("ssh-ed25519", "ecdsa-sha2-nistp256"):
        async with LocalSshServer(
            authorized_keys=[public_key_of(private_key=client_key)],
            host_key=new_private_key(algorithm=algorithm),
        ) as impostor:
            target = replace(ssh_target, port=impostor.port)
            with pytest.raises(HostKeyChanged) as refused:
                await SshRunner(pool=ssh_pool, target=target).run("true", timeout=10)
            message = refused.value.message
            assert fingerprint(host_key=impostor.host_key) in message
            assert fingerprint(host_key=ssh_target.host_key or "") in message
            assert "pinned at registration" in message
            assert impostor.accepted == 1


async def test_a_key_learned_on_first_contact_is_pinned_for_later_connections(
    ssh_target: SshTarget, client_key: str, ssh_pool: SshPool, ssh_server: LocalSshServer
) -> None:
    unpinned = replace(ssh_target, host_key=None)
    runner = SshRunner(pool=ssh_pool, target=unpinned)
    await runner.run("true", timeout=10)
    await ssh_server.stop()
    # Reinstalled: same port, new key.
    async with LocalSshServer(
        authorized_keys=[public_key_of(private_key=client_key)], port=ssh_server.port
    ) as reinstalled:
        with pytest.raises(HostKeyChanged):
            await runner.run("true", timeout=10)
        assert reinstalled.accepted == 1


# --- targets ------------------------------------------------------------------------------


def test_a_target_needs_credentials_and_readable_keys() -> None:
    with pytest.raises(Invalid, match="private key or a password"):
        SshTarget(host="build-1", username="ci")
    with pytest.raises(Invalid, match="private key cannot be read") as bad_key:
        SshTarget(host="build-1", username="ci", private_key="not a key")
    assert bad_key.value.field == "private_key"
    with pytest.raises(Invalid, match="host key cannot be read"):
        SshTarget(host="build-1", username="ci", password="x", host_key="ssh-ed25519 garbage")
    with pytest.raises(Invalid, match="port"):
        SshTarget(host="build-1", username="ci", password="x", port=70000)


def test_a_target_keeps_its_secrets_out_of_repr_and_names_ipv6_hosts_plainly(client_key: str) -> None:
    target = SshTarget(host="::1", username="ci", port=2222, private_key=client_key, password="s3cret")
    assert "s3cret" not in repr(target) and "PRIVATE KEY" not in repr(target)
    assert target.where == "ci@[::1]:2222"


async def test_a_closed_pool_refuses_new_connections(ssh_target: SshTarget) -> None:
    pool = SshPool(settings=FAST)
    await pool.close()
    with pytest.raises(DeviceError, match="pool is closed"):
        await SshRunner(pool=pool, target=ssh_target).run("true", timeout=5)
