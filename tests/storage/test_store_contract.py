"""The ArtifactStore contract, held by LocalStore and by the in-package fake MemoryStore alike."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from labfleet.errors import Corrupted, NotFound
from labfleet.storage import ArtifactStore, LocalStore
from labfleet.storage.fakes import MemoryStore

Corrupt = Callable[[str], None]


def _flip_on_disk(root: Path) -> Corrupt:
    def corrupt(digest: str) -> None:
        path = root / "sha256" / digest[:2] / digest[2:]
        os.chmod(path, 0o644)
        data = bytearray(path.read_bytes())
        data[0] ^= 0x01
        path.write_bytes(bytes(data))

    return corrupt


@pytest.fixture(params=["local", "memory"])
def kind(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[ArtifactStore, Corrupt]:
    if request.param == "local":
        return LocalStore(tmp_path / "store", chunk_size=4096), _flip_on_disk(tmp_path / "store")
    fake = MemoryStore(chunk_size=4096)
    return fake, fake.corrupt


async def _stream(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 1000):
        yield data[i : i + 1000]


async def _read(store: ArtifactStore, digest: str, **kw: int) -> bytes:
    return b"".join([c async for c in await store.open(digest, **kw)])


async def test_store_read_dedupe_delete(kind: tuple[ArtifactStore, Corrupt], tmp_path: Path) -> None:
    # Validates: 4.2
    store, _ = kind
    data = os.urandom(20_000)
    digest = hashlib.sha256(data).hexdigest()
    (tmp_path / "dtb").write_bytes(data)
    assert (await store.put_file(tmp_path / "dtb")).sha256 == digest
    assert (await store.put_stream(_stream(data), expected=digest)).sha256 == digest
    assert [d async for d in store.digests()] == [digest]
    assert await _read(store, digest) == data
    assert await _read(store, digest, offset=4000, length=5000) == data[4000:9000]
    assert (await store.verify(digest)).ok
    await store.delete(digest)
    with pytest.raises(NotFound):
        await store.open(digest)


async def test_corruption_is_never_served(kind: tuple[ArtifactStore, Corrupt]) -> None:
    # Validates: 4.2
    store, corrupt = kind
    data = os.urandom(20_000)
    digest = (await store.put_stream(_stream(data))).sha256
    corrupt(digest)
    with pytest.raises(Corrupted):
        await _read(store, digest)
    with pytest.raises(Corrupted):
        await store.open(digest, offset=10_000, length=10)
    assert not (await store.verify(digest)).ok
    with pytest.raises(Corrupted):
        await store.put_stream(_stream(b"other"), expected=digest)
