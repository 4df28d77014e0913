"""LocalStore on a temporary directory: content addressing, atomic puts, verified reads (R4.2)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from labfleet.errors import Corrupted, Invalid, NotFound
from labfleet.storage import ArtifactStore, LocalStore, StoredBlob

CHUNK = 64 * 1024  # small chunks so modest test blobs span several of them


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "sha256").rglob("*") if p.is_file())


def temp_files(root: Path) -> list[Path]:
    return sorted((root / "tmp").glob("*")) if (root / "tmp").exists() else []


async def read_all(store: ArtifactStore, digest: str, **kw: int) -> bytes:
    return b"".join([chunk async for chunk in await store.open(digest, **kw)])


async def chunks_of(data: bytes, size: int = 10_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        await asyncio.sleep(0)
        yield data[i : i + size]


def flip_byte(path: Path, at: int) -> None:
    os.chmod(path, 0o644)  # blobs are stored read-only
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "artifacts", chunk_size=CHUNK)


async def test_a_stored_file_reads_back_under_its_sha256(store: LocalStore, tmp_path: Path) -> None:
    # Validates: 4.2
    data = os.urandom(300_000)
    source = tmp_path / "Image"
    source.write_bytes(data)
    blob = await store.put_file(source)
    assert blob == StoredBlob(sha256=sha(data), size=len(data))
    assert await read_all(store, blob.sha256) == data
    assert blob_files(store.root) == [store.root / "sha256" / blob.sha256[:2] / blob.sha256[2:]]
    assert await store.exists(blob.sha256)
    assert await store.stat(blob.sha256) == blob
    assert temp_files(store.root) == []


async def test_a_stream_is_stored_and_read_back(store: LocalStore) -> None:
    data = os.urandom(200_003)
    blob = await store.put_stream(chunks_of(data))
    assert blob == StoredBlob(sha256=sha(data), size=len(data))
    assert await read_all(store, blob.sha256) == data


async def test_empty_content_is_a_blob_too(store: LocalStore) -> None:
    blob = await store.put_stream(chunks_of(b""))
    assert blob == StoredBlob(sha256=sha(b""), size=0)
    assert await read_all(store, blob.sha256) == b""


async def test_the_same_content_is_stored_once(store: LocalStore, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    first = await store.put_stream(chunks_of(data))
    path = blob_files(store.root)[0]
    before = path.stat()
    source = tmp_path / "again"
    source.write_bytes(data)
    assert await store.put_file(source) == first
    assert await store.put_stream(chunks_of(data), expected=first.sha256) == first
    assert blob_files(store.root) == [path]
    after = path.stat()
    # A no-op: the stored file is the same inode, untouched.
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert temp_files(store.root) == []


async def test_an_expected_digest_that_does_not_match_stores_nothing(store: LocalStore) -> None:
    # Validates: 4.2
    data = b"vmlinux" * 1000
    wrong = sha(b"something else")
    with pytest.raises(Corrupted) as caught:
        await store.put_stream(chunks_of(data), expected=wrong)
    assert (caught.value.expected, caught.value.actual) == (wrong, sha(data))
    assert wrong in caught.value.message and sha(data) in caught.value.message
    assert blob_files(store.root) == []
    assert temp_files(store.root) == []


async def test_a_corrupted_blob_is_never_returned_whole(store: LocalStore) -> None:
    # Validates: 4.2
    data = os.urandom(5 * CHUNK + 123)
    blob = await store.put_stream(chunks_of(data))
    flip_byte(blob_files(store.root)[0], len(data) - 1)  # in the last chunk
    received = bytearray()

    async def receive() -> None:
        async for chunk in await store.open(blob.sha256):
            received.extend(chunk)

    with pytest.raises(Corrupted) as caught:
        await receive()
    assert caught.value.expected == blob.sha256 and caught.value.actual != blob.sha256
    assert len(received) < len(data)  # the last chunk was withheld
    assert not (await store.verify(blob.sha256)).ok


async def test_a_corrupted_small_blob_delivers_nothing(store: LocalStore) -> None:
    blob = await store.put_stream(chunks_of(b"initramfs"))
    flip_byte(blob_files(store.root)[0], 0)
    reader = await store.open(blob.sha256)
    with pytest.raises(Corrupted):
        await anext(reader)


async def test_range_reads_return_exactly_the_bytes_asked_for(store: LocalStore) -> None:
    data = os.urandom(3 * CHUNK + 17)
    blob = await store.put_stream(chunks_of(data))
    for offset, length in [(0, 1), (1, CHUNK), (CHUNK - 1, 2), (5, 3 * CHUNK), (len(data) - 1, 1), (7, 0)]:
        assert (
            await read_all(store, blob.sha256, offset=offset, length=length) == data[offset : offset + length]
        )
    assert await read_all(store, blob.sha256, offset=CHUNK + 3) == data[CHUNK + 3 :]
    assert await read_all(store, blob.sha256, offset=len(data)) == b""
    with pytest.raises(Invalid):
        await store.open(blob.sha256, offset=len(data) - 1, length=2)
    with pytest.raises(Invalid):
        await store.open(blob.sha256, offset=-1)


async def test_a_corrupted_blob_is_detected_on_range_reads(store: LocalStore) -> None:
    # Validates: 4.2
    data = os.urandom(4 * CHUNK)
    blob = await store.put_stream(chunks_of(data))
    assert await read_all(store, blob.sha256, offset=10, length=10) == data[10:20]  # now cached as good
    flip_byte(blob_files(store.root)[0], 3 * CHUNK)  # far from the range asked for
    with pytest.raises(Corrupted):
        await store.open(blob.sha256, offset=10, length=10)


async def test_range_reads_reuse_one_verification(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from labfleet.storage import _files, local

    data = os.urandom(2 * CHUNK)
    blob = await store.put_stream(chunks_of(data))
    calls = 0
    real = _files.hash_fd

    def counting(fd: int, chunk: int) -> tuple[str, int]:
        nonlocal calls
        calls += 1
        return real(fd, chunk)

    monkeypatch.setattr(local, "hash_fd", counting)
    results = await asyncio.gather(*(read_all(store, blob.sha256, offset=i, length=5) for i in range(8)))
    assert results == [data[i : i + 5] for i in range(8)]
    assert await read_all(store, blob.sha256, offset=100, length=5) == data[100:105]
    assert calls == 1


async def test_a_put_cancelled_mid_stream_leaves_nothing(store: LocalStore) -> None:
    started = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield os.urandom(3 * CHUNK)  # enough to reach the disk
        started.set()
        await asyncio.Event().wait()  # the build server goes quiet
        yield b"never"

    put = asyncio.create_task(store.put_stream(stalls()))
    await started.wait()
    assert len(temp_files(store.root)) == 1  # it was writing
    put.cancel()
    with pytest.raises(asyncio.CancelledError):
        await put
    assert blob_files(store.root) == []
    assert temp_files(store.root) == []


async def test_a_put_whose_source_fails_leaves_nothing(store: LocalStore) -> None:
    async def breaks() -> AsyncIterator[bytes]:
        yield os.urandom(2 * CHUNK)
        raise ConnectionResetError("build server went away")

    with pytest.raises(ConnectionResetError):
        await store.put_stream(breaks())
    assert blob_files(store.root) == []
    assert temp_files(store.root) == []


async def test_a_file_put_cancelled_mid_copy_leaves_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "artifacts", chunk_size=4096)  # many chunks: the copy takes a while
    source = tmp_path / "rootfs.img"
    source.write_bytes(os.urandom(16 << 20))
    put = asyncio.create_task(store.put_file(source))
    for _ in range(10_000):  # until the copy has begun
        if temp_files(store.root):
            break
        await asyncio.sleep(0.001)
    put.cancel()
    with pytest.raises(asyncio.CancelledError):
        await put
    assert blob_files(store.root) == []
    assert temp_files(store.root) == []


async def test_concurrent_puts_of_the_same_content_end_with_one_good_blob(store: LocalStore) -> None:
    data = os.urandom(400_000)
    blobs = await asyncio.gather(*(store.put_stream(chunks_of(data, 7_000)) for _ in range(6)))
    assert set(blobs) == {StoredBlob(sha256=sha(data), size=len(data))}
    assert len(blob_files(store.root)) == 1
    assert temp_files(store.root) == []
    assert (await store.verify(sha(data))).ok
    assert await read_all(store, sha(data)) == data


async def test_a_truncated_blob_is_repaired_by_storing_its_content_again(store: LocalStore) -> None:
    data = os.urandom(100_000)
    blob = await store.put_stream(chunks_of(data))
    path = blob_files(store.root)[0]
    os.chmod(path, 0o644)
    os.truncate(path, 10)
    assert await store.put_stream(chunks_of(data)) == blob
    assert await read_all(store, blob.sha256) == data


async def test_unknown_and_malformed_digests(store: LocalStore) -> None:
    unknown = sha(b"never stored")
    with pytest.raises(NotFound):
        await store.open(unknown)
    with pytest.raises(NotFound):
        await store.delete(unknown)
    with pytest.raises(NotFound):
        await store.verify(unknown)
    with pytest.raises(NotFound):
        await store.stat(unknown)
    assert not await store.exists(unknown)
    for bad in ["", "abc", unknown.upper(), unknown + "0", "../" + unknown[3:], "g" * 64]:
        with pytest.raises(Invalid) as caught:
            await store.exists(bad)
        assert caught.value.field == "digest"
    with pytest.raises(Invalid):
        await store.put_stream(chunks_of(b"x"), expected="ABC")


async def test_digests_lists_every_blob_and_delete_removes_one(store: LocalStore) -> None:
    assert [d async for d in store.digests()] == []
    contents = [os.urandom(1000) for _ in range(5)]
    for data in contents:
        await store.put_stream(chunks_of(data))
    (store.root / "sha256" / "ab").mkdir(exist_ok=True)
    (store.root / "sha256" / "ab" / "notes.txt~").write_text("stray")
    assert sorted([d async for d in store.digests()]) == sorted(sha(c) for c in contents)
    await store.delete(sha(contents[0]))
    assert not await store.exists(sha(contents[0]))
    assert sorted([d async for d in store.digests()]) == sorted(sha(c) for c in contents[1:])


async def test_verify_reports_good_and_bad_blobs(store: LocalStore) -> None:
    data = os.urandom(10_000)
    blob = await store.put_stream(chunks_of(data))
    good = await store.verify(blob.sha256)
    assert good.ok and good.actual == blob.sha256 and good.size == len(data)
    flip_byte(blob_files(store.root)[0], 5)
    bad = await store.verify(blob.sha256)
    assert not bad.ok and bad.expected == blob.sha256
    assert bad.actual == sha(blob_files(store.root)[0].read_bytes())


async def test_sweep_removes_only_old_temp_files(store: LocalStore) -> None:
    (store.root / "tmp").mkdir(parents=True)
    old = store.root / "tmp" / "put-dead.part"
    fresh = store.root / "tmp" / "put-live.part"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(old, (0, 0))
    assert await store.sweep(older_than=3600) == 1
    assert temp_files(store.root) == [fresh]


def test_local_store_is_an_artifact_store(tmp_path: Path) -> None:
    assert isinstance(LocalStore(tmp_path), ArtifactStore)
