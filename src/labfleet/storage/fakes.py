"""``MemoryStore``: an ``ArtifactStore`` in a dict, for unit tests of the code that uses one.

It keeps the contract that matters to callers (content addressing, expected digests,
verified reads that never deliver damaged bytes whole) and lets a test damage a blob
with ``corrupt``, without touching a disk.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from labfleet.errors import Corrupted, Invalid, NotFound
from labfleet.storage.protocol import StoredBlob, Verification, check_digest, check_upload


class MemoryStore:
    """Blobs in memory, named by SHA-256; implements ``ArtifactStore``."""

    def __init__(self, *, chunk_size: int = 64 * 1024) -> None:
        self.blobs: dict[str, bytes] = {}
        self._chunk = chunk_size

    def corrupt(self, digest: str, at: int = 0) -> None:
        """Flip one bit of a stored blob, as a failing disk would."""
        data = bytearray(self._get(digest))
        data[at] ^= 0x01
        self.blobs[digest] = bytes(data)

    async def put_file(self, path: Path, *, expected: str | None = None) -> StoredBlob:
        """Store a local file's bytes; ``Corrupted`` (nothing stored) on a mismatch."""
        try:
            data = await asyncio.to_thread(Path(path).read_bytes)
        except FileNotFoundError:
            raise NotFound(f"no such file to store: {path}", field="path") from None
        return self._put(data, expected)

    async def put_stream(self, chunks: AsyncIterable[bytes], *, expected: str | None = None) -> StoredBlob:
        """Store the bytes of an async stream; ``Corrupted`` (nothing stored) on a mismatch."""
        data = bytearray()
        async for chunk in chunks:
            data += chunk
        return self._put(bytes(data), expected)

    def _put(self, data: bytes, expected: str | None) -> StoredBlob:
        if expected is not None:
            check_digest(expected)
        actual = hashlib.sha256(data).hexdigest()
        check_upload(actual, expected)
        self.blobs.setdefault(actual, data)
        return StoredBlob(sha256=actual, size=len(data))

    def _get(self, digest: str) -> bytes:
        try:
            return self.blobs[check_digest(digest)]
        except KeyError:
            raise NotFound(f"no artifact blob with SHA-256 {digest}", field="digest") from None

    async def open(self, digest: str, *, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """The blob's bytes, whole or a range, verified as ``LocalStore`` does."""
        data = self._get(digest)
        end = len(data) if length is None else offset + length
        if offset < 0 or end < offset or end > len(data):
            raise Invalid(f"range {offset}-{end} is outside the blob's {len(data)} bytes", field="range")
        actual = hashlib.sha256(data).hexdigest()
        if (offset, end) != (0, len(data)) and actual != digest:
            raise _corrupted(digest, actual)
        return self._chunks(digest, data, offset, end, actual)

    async def _chunks(
        self, digest: str, data: bytes, offset: int, end: int, actual: str
    ) -> AsyncIterator[bytes]:
        pieces = [data[i : min(i + self._chunk, end)] for i in range(offset, end, self._chunk)]
        for piece in pieces[:-1]:
            yield piece
        if actual != digest:
            raise _corrupted(digest, actual)
        if pieces:
            yield pieces[-1]

    async def stat(self, digest: str) -> StoredBlob:
        """The blob's size; ``NotFound`` if absent."""
        return StoredBlob(sha256=digest, size=len(self._get(digest)))

    async def exists(self, digest: str) -> bool:
        """Whether a blob is stored under ``digest``."""
        return check_digest(digest) in self.blobs

    async def delete(self, digest: str) -> None:
        """Remove the blob; ``NotFound`` if it is not there."""
        self._get(digest)
        del self.blobs[digest]

    async def verify(self, digest: str) -> Verification:
        """Re-hash the blob and report."""
        data = self._get(digest)
        return Verification(expected=digest, actual=hashlib.sha256(data).hexdigest(), size=len(data))

    async def digests(self) -> AsyncIterator[str]:
        """Every stored digest."""
        for digest in list(self.blobs):
            yield digest


def _corrupted(digest: str, actual: str) -> Corrupted:
    return Corrupted(
        f"artifact blob {digest} is corrupted: its bytes hash to {actual}", expected=digest, actual=actual
    )
