"""Copying files over SFTP, each copy checked with SHA-256 on both ends.

The remote digest is computed on the remote machine (``sha256sum``, or ``openssl dgst``
where that is all there is) from the file as it lies on its disk, not from the bytes
that went over the wire. A copy lands under a temporary name first and takes its real
name only once the digests agree, so a reader never sees half a file or a corrupt one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from pathlib import Path

import asyncssh

from labfleet.errors import DeviceError, Timeout
from labfleet.hw.commands import CommandRunner, quote
from labfleet.hw.ssh_pool import SshPool
from labfleet.hw.ssh_target import SshTarget
from labfleet.hw.translate import ssh_errors

_PART = ".labfleet-part"

# Prints the SHA-256 of file $1; when $2 is given, gives the file the name $3 if the
# digest is $2 and removes it otherwise. One round trip for check and commit.
_DIGEST_SCRIPT = r"""f=$1
if command -v sha256sum >/dev/null 2>&1; then d=$(sha256sum <"$f") || exit
elif command -v openssl >/dev/null 2>&1; then d=$(openssl dgst -sha256 -r <"$f") || exit
else echo "neither sha256sum nor openssl found" >&2; exit 127
fi
d=${d%% *}
echo "$d"
if [ -n "$2" ]; then
  if [ "$d" = "$2" ]; then mv -f -- "$f" "$3"; else rm -f -- "$f"; fi
fi
"""


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


async def _remote_digest(runner: CommandRunner, *words: str, timeout: float) -> str:
    command = f"sh -c {quote(_DIGEST_SCRIPT)} labfleet-digest {quote(*words)}"
    result = await runner.run(command, timeout=timeout)
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def _mismatch(where: str, what: str, *, local: str, remote: str) -> DeviceError:
    return DeviceError(f"{where}: {what}: checksum mismatch: local sha256 {local}, remote sha256 {remote}")


async def _sftp(pool: SshPool, target: SshTarget) -> asyncssh.SFTPClient:
    return await pool.open_channel(target, lambda conn: conn.start_sftp_client())


async def put_file(
    *, pool: SshPool, runner: CommandRunner, target: SshTarget, local: Path, remote: str, timeout: float
) -> str:
    """Copies ``local`` to ``remote`` and returns its SHA-256 (hex), verified on the remote side."""
    where = target.where
    part = remote + _PART
    try:
        async with asyncio.timeout(timeout):
            local_digest = await asyncio.to_thread(_sha256_file, local)
            async with pool.session(target):
                sftp = await _sftp(pool, target)
                with ssh_errors(where):
                    async with sftp:
                        await sftp.put(local, part)
            remote_digest = await _remote_digest(runner, part, local_digest, remote, timeout=timeout)
    except TimeoutError:
        raise Timeout(f"{where}: copying {local} to {remote} did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise DeviceError(f"{where}: cannot read {local} ({exc.strerror or exc})") from exc
    if remote_digest != local_digest:
        raise _mismatch(where, f"{remote} after upload", local=local_digest, remote=remote_digest)
    return local_digest


async def get_file(
    *, pool: SshPool, runner: CommandRunner, target: SshTarget, remote: str, local: Path, timeout: float
) -> str:
    """Copies ``remote`` to ``local`` and returns its SHA-256 (hex), verified against the remote side."""
    where = target.where
    part = local.with_name(local.name + _PART)
    try:
        async with asyncio.timeout(timeout):
            # Opened here so that a local problem is reported as one, not as the remote's.
            part.open("wb").close()
            remote_digest = await _remote_digest(runner, remote, timeout=timeout)
            async with pool.session(target):
                sftp = await _sftp(pool, target)
                with ssh_errors(where):
                    async with sftp:
                        await sftp.get(remote, part)
            local_digest = await asyncio.to_thread(_sha256_file, part)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            part.unlink(missing_ok=True)
        if isinstance(exc, TimeoutError):
            raise Timeout(
                f"{where}: copying {remote} to {local} did not finish within {timeout:g} s"
            ) from None
        if isinstance(exc, OSError):
            raise DeviceError(f"{where}: cannot write {local} ({exc.strerror or exc})") from exc
        raise
    if remote_digest != local_digest:
        part.unlink(missing_ok=True)
        raise _mismatch(where, f"{remote} after download", local=local_digest, remote=remote_digest)
    os.replace(part, local)
    return local_digest
