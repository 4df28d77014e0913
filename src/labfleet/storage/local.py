"""``LocalStore``: artifact blobs on the local filesystem, named by their SHA-256.

Layout under the root directory::

    <root>/sha256/ab/cdef...    one blob, read-only; "ab" + "cdef..." is its digest
    <root>/tmp/put-*.part       puts in progress (same filesystem, so the rename is atomic)

A put hashes while it writes (one pass), fsyncs, and links the temp file into place, so
a crash leaves at worst a stray temp file (``sweep`` removes old ones), never a partial
blob under a digest name. Blocking file work runs in worker threads in large chunks.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from labfleet.errors import Corrupted, Invalid, NotFound
from labfleet.storage._files import (
    FileKey,
    TempBlob,
    file_key,
    hash_fd,
    in_thread,
    open_blob,
    read_hashing,
)
from labfleet.storage.protocol import StoredBlob, Verification, check_digest

CHUNK = 1 << 20


class LocalStore:
    """Content-addressed blobs under ``root``; implements ``ArtifactStore``."""

    def __init__(self, root: Path, *, chunk_size: int = CHUNK, verified_cache: int = 4096) -> None:
        self.root = Path(root)
        self._blobs = self.root / "sha256"
        self._tmp = self.root / "tmp"
        self._chunk = chunk_size
        # digest -> (file version, the digest that version hashed to): range reads of a big
        # blob check it once, not per request; a rewritten or replaced file misses.
        self._verified: OrderedDict[str, tuple[FileKey, str]] = OrderedDict()
        self._verified_max = verified_cache
        # One hash per (digest, file version) at a time, however many range reads wait on it.
        self._hashing: dict[tuple[str, FileKey], asyncio.Future[str]] = {}

    def _path(self, digest: str) -> Path:
        check_digest(digest)
        return self._blobs / digest[:2] / digest[2:]

    # -- writing

    async def put_file(self, path: Path, *, expected: str | None = None) -> StoredBlob:
        """Store a local file's bytes; ``Corrupted`` (nothing stored) if they do not hash to ``expected``."""
        if expected is not None:
            check_digest(expected)
        stop = threading.Event()

        def ingest() -> StoredBlob:
            # The whole copy-and-hash loop in one thread hop: per-chunk hops would cost more
            # than the hashing itself on a fast disk.
            temp = TempBlob(self._tmp)
            try:
                temp.create()
                temp.copy_from(Path(path), self._chunk, stop)
                return temp.publish(self._path(temp.digest.hexdigest()), expected)
            finally:
                temp.discard()

        return await in_thread(ingest, stop=stop)

    async def put_stream(self, chunks: AsyncIterable[bytes], *, expected: str | None = None) -> StoredBlob:
        """Store the bytes of an async stream; ``Corrupted`` (nothing stored) on a mismatch."""
        if expected is not None:
            check_digest(expected)
        temp = TempBlob(self._tmp)
        try:
            await in_thread(temp.create)
            # Small network chunks are gathered into one large write per thread hop.
            pending = bytearray()
            async for chunk in chunks:
                pending += chunk
                if len(pending) >= self._chunk:
                    data, pending = pending, bytearray()
                    await in_thread(functools.partial(temp.write, data))
            if pending:
                await in_thread(functools.partial(temp.write, pending))
            final = self._path(temp.digest.hexdigest())
            return await in_thread(functools.partial(temp.publish, final, expected))
        finally:
            # Whatever stopped the put (a failing source, a cancelled task), the temp file goes.
            await in_thread(temp.discard)

    async def delete(self, digest: str) -> None:
        """Remove the blob; ``NotFound`` if it is not there."""
        path = self._path(digest)
        self._verified.pop(digest, None)
        try:
            await in_thread(path.unlink)
        except FileNotFoundError:
            raise NotFound(f"no artifact blob with SHA-256 {digest}", field="digest") from None

    async def sweep(self, *, older_than: float = 24 * 3600) -> int:
        """Remove temp files left by puts that died (process killed) more than ``older_than`` s ago."""

        def sweep() -> int:
            cutoff = time.time() - older_than
            removed = 0
            for entry in self._tmp.glob("put-*.part") if self._tmp.is_dir() else ():
                try:
                    if entry.stat().st_mtime < cutoff:
                        entry.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue  # finished or removed meanwhile
            return removed

        return await in_thread(sweep)

    # -- reading

    async def open(self, digest: str, *, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """The blob's bytes as chunks, whole or ``length`` bytes from ``offset``, only ever verified ones.

        ``NotFound``, ``Invalid`` (bad digest or range) and, for ranges, ``Corrupted`` are raised
        here, before any byte is sent; a whole read raises ``Corrupted`` in place of its last chunk.
        """
        path = self._path(digest)
        if offset < 0 or (length is not None and length < 0):
            raise Invalid(f"negative range: offset {offset}, length {length}", field="range")
        fd, st = await in_thread(functools.partial(open_blob, path, digest))
        try:
            end = st.st_size if length is None else offset + length
            if end > st.st_size:
                raise Invalid(f"range {offset}-{end} is outside the blob's {st.st_size} bytes", field="range")
            if offset == 0 and end == st.st_size:
                return self._whole(path, digest)
            await self._check(fd, digest, st)
        finally:
            os.close(fd)
        return self._range(path, digest, offset, end, file_key(st))

    async def _whole(self, path: Path, digest: str) -> AsyncIterator[bytes]:
        # Verified as it streams: each chunk is sent only once the next one has been read,
        # and the last only once the digest matched, so a damaged blob never arrives whole.
        fd, st = await in_thread(functools.partial(open_blob, path, digest))
        try:
            hasher = hashlib.sha256()
            held: bytes | None = None
            pos = 0
            while data := await in_thread(functools.partial(read_hashing, fd, pos, self._chunk, hasher)):
                if held is not None:
                    yield held
                held = data
                pos += len(data)
            actual = hasher.hexdigest()
            self._remember(digest, file_key(st), actual)
            _raise_if_corrupted(digest, actual)
            if held is not None:
                yield held
        finally:
            os.close(fd)

    async def _range(
        self, path: Path, digest: str, offset: int, end: int, key: FileKey
    ) -> AsyncIterator[bytes]:
        fd, st = await in_thread(functools.partial(open_blob, path, digest))
        try:
            if file_key(st) != key:
                # Changed or replaced since open() checked it: check this version, still
                # before the first byte goes out.
                await self._check(fd, digest, st)
            pos = offset
            while pos < end:
                data = await in_thread(functools.partial(os.pread, fd, min(self._chunk, end - pos), pos))
                if not data:
                    raise Corrupted(
                        f"artifact blob {digest} shrank while being read",
                        expected=digest,
                        actual="",
                    )
                yield data
                pos += len(data)
        finally:
            os.close(fd)

    async def _check(self, fd: int, digest: str, st: os.stat_result) -> None:
        """``Corrupted`` unless this version of the file hashes to ``digest``; cached per version."""
        key = file_key(st)
        cached = self._verified.get(digest)
        if cached is not None and cached[0] == key:
            self._verified.move_to_end(digest)
            _raise_if_corrupted(digest, cached[1])
            return
        running = self._hashing.get((digest, key))
        if running is None:
            # Its own descriptor: the caller that started the hash may stop waiting and
            # close its fd while others still wait on the result.
            running = asyncio.ensure_future(self._hash_once(digest, key, os.dup(fd)))
            self._hashing[(digest, key)] = running
            running.add_done_callback(lambda _: self._hashing.pop((digest, key), None))
        _raise_if_corrupted(digest, await asyncio.shield(running))

    async def _hash_once(self, digest: str, key: FileKey, own: int) -> str:
        try:
            actual, _ = await in_thread(functools.partial(hash_fd, own, self._chunk))
        finally:
            os.close(own)
        self._remember(digest, key, actual)
        return actual

    def _remember(self, digest: str, key: FileKey, actual: str) -> None:
        self._verified[digest] = (key, actual)
        self._verified.move_to_end(digest)
        while len(self._verified) > self._verified_max:
            self._verified.popitem(last=False)

    async def stat(self, digest: str) -> StoredBlob:
        """The blob's size (``NotFound`` if absent), without verifying it."""
        path = self._path(digest)
        try:
            st = await in_thread(path.stat)
        except FileNotFoundError:
            raise NotFound(f"no artifact blob with SHA-256 {digest}", field="digest") from None
        return StoredBlob(sha256=digest, size=st.st_size)

    async def exists(self, digest: str) -> bool:
        """Whether a blob is stored under ``digest`` (not whether it is intact)."""
        return await in_thread(self._path(digest).is_file)

    async def verify(self, digest: str) -> Verification:
        """Re-hash the stored bytes (never from the cache) and report, whatever the outcome."""
        path = self._path(digest)
        fd, st = await in_thread(functools.partial(open_blob, path, digest))
        try:
            stop = threading.Event()
            actual, size = await in_thread(functools.partial(hash_fd, fd, self._chunk, stop), stop=stop)
        finally:
            os.close(fd)
        self._remember(digest, file_key(st), actual)
        return Verification(expected=digest, actual=actual, size=size)

    async def digests(self) -> AsyncIterator[str]:
        """Every stored digest, one shard directory per thread hop."""
        shards = await in_thread(functools.partial(_listdir, self._blobs))
        for shard in sorted(shards):
            if len(shard) != 2:
                continue
            for rest in await in_thread(functools.partial(_listdir, self._blobs / shard)):
                digest = shard + rest
                try:
                    check_digest(digest)
                except Invalid:
                    continue  # not ours (an editor's backup, a stray file): never a blob
                yield digest


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _raise_if_corrupted(digest: str, actual: str) -> None:
    if actual != digest:
        raise Corrupted(
            f"artifact blob {digest} is corrupted: its bytes hash to {actual}",
            expected=digest,
            actual=actual,
        )
