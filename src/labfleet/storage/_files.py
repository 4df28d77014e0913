"""The blocking half of ``LocalStore``: file work that runs in worker threads, never on the loop.

Each function here does a whole step (copy and hash a file, hash a blob, write one large
chunk) in one thread hop, because hopping per small chunk would cost more than the I/O.
hashlib and os.write release the GIL on large buffers, so these threads run in parallel
with the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from labfleet.errors import NotFound
from labfleet.storage.protocol import StoredBlob, check_upload

T = TypeVar("T")

# Blobs are never modified in place once named; read-only makes an accidental write fail.
BLOB_MODE = 0o444

# What identifies one version of a file on disk without reading it: a rewrite changes the
# mtime (and ctime), a replacement changes the inode.
FileKey = tuple[int, int, int, int]


class Stopped(Exception):
    """The awaiting task was cancelled; the worker thread gave up at the next chunk."""


async def in_thread(fn: Callable[[], T], *, stop: threading.Event | None = None) -> T:
    """Run ``fn`` in a worker thread; if the caller is cancelled, let the thread end first.

    A cancelled ``to_thread`` leaves its thread running; cleanup that ran at once would
    race it (close a file it writes, unlink a temp file it is about to rename). So on
    cancellation ``stop`` is set, the thread is waited for, and only then is the
    cancellation passed on.
    """
    task = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if stop is not None:
            stop.set()
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as lost
        raise


def file_key(st: os.stat_result) -> FileKey:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def open_blob(path: Path, digest: str) -> tuple[int, os.stat_result]:
    """A read-only descriptor on a blob and its stat; ``NotFound`` if there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"no artifact blob with SHA-256 {digest}", field="digest") from None
    try:
        return fd, os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise


def hash_fd(fd: int, chunk: int, stop: threading.Event | None = None) -> tuple[str, int]:
    """SHA-256 and size of everything readable from ``fd``, read from offset 0."""
    digest = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    pos = 0
    while n := os.preadv(fd, [buf], pos):
        if stop is not None and stop.is_set():
            raise Stopped
        digest.update(view[:n])
        pos += n
    return digest.hexdigest(), pos


def read_hashing(fd: int, pos: int, chunk: int, digest: hashlib._Hash) -> bytes:
    """One chunk from ``pos``, fed to ``digest`` in the same thread hop."""
    data = os.pread(fd, chunk, pos)
    digest.update(data)
    return data


def fsync_dir(path: Path) -> None:
    """Make a rename or link in ``path`` durable: on Linux a directory entry needs its own fsync."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class TempBlob:
    """A temporary file in the store's own filesystem, written and hashed in one pass."""

    def __init__(self, tmp_dir: Path) -> None:
        # Named before anything touches the disk, so whoever cleans up knows what to remove
        # even if the put is cancelled while the file is being created.
        self.tmp_dir = tmp_dir
        self.path = tmp_dir / f"put-{uuid.uuid4().hex}.part"
        self.fd = -1
        self.digest = hashlib.sha256()
        self.size = 0

    def create(self) -> None:
        """Create the file (blocking: run it in a thread)."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.digest.update(data)
        view = memoryview(data)
        while view:
            # os.write may write less than asked (signals, pipes); loop until all is down.
            view = view[os.write(self.fd, view) :]
        self.size += len(data)

    def copy_from(self, source: Path, chunk: int, stop: threading.Event) -> None:
        """Copy and hash a whole local file, reusing one buffer, checking ``stop`` per chunk."""
        buf = bytearray(chunk)
        view = memoryview(buf)
        try:
            src = open(source, "rb", buffering=0)  # noqa: SIM115 - closed below, in this thread
        except FileNotFoundError:
            raise NotFound(f"no such file to store: {source}", field="path") from None
        with src:
            while n := src.readinto(buf):
                if stop.is_set():
                    raise Stopped
                self.write(view[:n])

    def discard(self) -> None:
        """Close and remove the temp file; safe to call more than once."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.path.unlink(missing_ok=True)

    def publish(self, final: Path, expected: str | None) -> StoredBlob:
        """Name the finished file by its digest, atomically; a no-op if that content is stored.

        The bytes are fsync'ed before the name appears, so after a crash a blob's name
        never points at missing bytes. ``os.link`` fails rather than overwrite, so a blob
        that is already there (another put of the same content won) is never touched.
        """
        actual = self.digest.hexdigest()
        try:
            check_upload(actual, expected)
            blob = StoredBlob(sha256=actual, size=self.size)
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = -1
            os.chmod(self.path, BLOB_MODE)
            shard = final.parent
            new_shard = not shard.is_dir()
            shard.mkdir(parents=True, exist_ok=True)
            try:
                os.link(self.path, final)
            except FileExistsError:
                self._repair_if_truncated(final)
                return blob
            except OSError:
                # A filesystem without hard links: rename instead. Overwriting a blob of
                # the same digest is harmless (same bytes) and atomic for its readers.
                if final.exists():
                    return blob
                os.replace(self.path, final)
            fsync_dir(shard)
            if new_shard:
                fsync_dir(shard.parent)
            return blob
        finally:
            self.discard()

    def _repair_if_truncated(self, final: Path) -> None:
        # The stored copy of this content has the wrong size: it is damaged, and ours is
        # known good, so replace it atomically. A same-size copy is left alone (cheap check
        # only; scrubbing with verify() finds the rest).
        try:
            if final.stat().st_size == self.size:
                return
        except FileNotFoundError:
            pass  # deleted meanwhile: ours takes its place
        os.replace(self.path, final)
        fsync_dir(final.parent)
