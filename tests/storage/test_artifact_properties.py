"""Property 4: artifact integrity, for any content and any single-byte corruption."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labfleet.errors import Corrupted
from labfleet.storage import LocalStore

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(
    data=st.binary(min_size=1, max_size=300_000),
    where=st.floats(0, 1, exclude_max=True),
    bit=st.integers(0, 7),
)
def test_property_4_artifact_integrity(data: bytes, where: float, bit: int) -> None:
    # Validates: 4.2
    at = int(where * len(data))

    async def check(root: Path) -> None:
        store = LocalStore(root, chunk_size=32 * 1024)
        blob = await store.put_stream(_one(data))
        assert blob.sha256 == hashlib.sha256(data).hexdigest()
        assert blob.size == len(data)
        assert await _drain(store, blob.sha256) == data

        _flip(root / "sha256" / blob.sha256[:2] / blob.sha256[2:], at, bit)
        with pytest.raises(Corrupted) as whole:
            await _drain(store, blob.sha256)
        assert whole.value.expected == blob.sha256
        with pytest.raises(Corrupted):
            await _drain(store, blob.sha256, offset=len(data) - 1, length=1)

    with tempfile.TemporaryDirectory() as root:
        asyncio.run(check(Path(root)))


def _flip(path: Path, at: int, bit: int) -> None:
    os.chmod(path, 0o644)  # blobs are stored read-only
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ (1 << bit)]))


async def _drain(store: LocalStore, digest: str, **kw: int) -> bytes:
    return b"".join([chunk async for chunk in await store.open(digest, **kw)])


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data
