"""Storing artifact bytes: the protocol every blob store implements, and the digest rules.

A blob is named by the SHA-256 of its bytes (64 lowercase hex digits), so one content is
stored once however many artifacts refer to it, and any reader can check what it got.
A store must never hand out bytes that do not match their name: a whole read checks the
digest as it streams and withholds the last chunk until it has; a range read checks the
whole blob first.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from labfleet.errors import Corrupted, Invalid

_DIGEST = re.compile(r"[0-9a-f]{64}")


def check_digest(digest: str) -> str:
    """The digest itself if it is 64 lowercase hex digits, else ``Invalid`` (field ``digest``)."""
    if not isinstance(digest, str) or _DIGEST.fullmatch(digest) is None:
        raise Invalid(f"not a SHA-256 digest (64 lowercase hex digits): {digest!r}", field="digest")
    return digest


def check_upload(actual: str, expected: str | None) -> None:
    """``Corrupted`` (field ``sha256``) when bytes being stored hash to other than the declared digest."""
    if expected is not None and actual != expected:
        raise Corrupted(
            f"content hashes to SHA-256 {actual}, not the expected {expected}; nothing stored",
            expected=expected,
            actual=actual,
            field="sha256",
        )


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """What a store holds under one name: the SHA-256 of the bytes and their size."""

    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of re-hashing one blob."""

    expected: str
    actual: str
    size: int

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


@runtime_checkable
class ArtifactStore(Protocol):
    """Content-addressed blob storage: the only way labfleet reads or writes artifact bytes."""

    async def put_file(self, path: Path, *, expected: str | None = None) -> StoredBlob:
        """Store a local file's bytes; ``Corrupted`` (nothing stored) if they do not hash to ``expected``."""
        ...

    async def put_stream(self, chunks: AsyncIterable[bytes], *, expected: str | None = None) -> StoredBlob:
        """Store the bytes of an async stream; ``Corrupted`` (nothing stored) on a mismatch."""
        ...

    async def open(self, digest: str, *, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """The blob's bytes as chunks, whole or ``length`` bytes from ``offset``, only ever verified ones.

        ``NotFound``, ``Invalid`` (bad digest or range) and, for ranges, ``Corrupted`` are raised
        here, before any byte is sent; a whole read raises ``Corrupted`` in place of its last chunk.
        """
        ...

    async def stat(self, digest: str) -> StoredBlob:
        """The blob's size (``NotFound`` if absent), without verifying it."""
        ...

    async def exists(self, digest: str) -> bool: ...

    async def delete(self, digest: str) -> None:
        """Remove the blob; ``NotFound`` if it is not there."""
        ...

    async def verify(self, digest: str) -> Verification:
        """Re-hash the stored bytes and report, whatever the outcome."""
        ...

    def digests(self) -> AsyncIterator[str]:
        """Every stored digest, in no particular order (for retention and scrubbing)."""
        ...
