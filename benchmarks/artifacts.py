"""Artifact ingest: ``LocalStore.put_file`` of a large file against ``sha256sum`` of it.

    .venv/bin/python -m benchmarks.artifacts [--size-mib 1024] [--dir /tmp]

The file is generated from os.urandom in a temporary directory and deleted afterwards.
Each measurement runs twice and the better run counts, so the page cache is warm for both
sides. Ingest includes what a real put does: hash while copying, fsync, link into place;
each run starts from an empty store, so none is a no-op. The target is a ratio >= 0.8:
storing an artifact should cost little more than checksumming it. A verified whole read
(``open``) is shown too.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from labfleet.storage import LocalStore

MIB = 1 << 20


def generate(path: Path, size_mib: int) -> str:
    """Write ``size_mib`` MiB of random bytes; their SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(size_mib):
            block = os.urandom(MIB)
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


def sha256sum(path: Path) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - start, out.split()[0]


async def ingest(path: Path, root: Path) -> tuple[float, str]:
    shutil.rmtree(root, ignore_errors=True)
    store = LocalStore(root)
    start = time.perf_counter()
    blob = await store.put_file(path)
    return time.perf_counter() - start, blob.sha256


async def read_back(root: Path, digest: str) -> float:
    store = LocalStore(root)
    start = time.perf_counter()
    async for _ in await store.open(digest):
        pass
    return time.perf_counter() - start


def rate(size_mib: int, seconds: float) -> float:
    """MB/s (10^6 bytes), as sha256sum and dd users quote it."""
    return size_mib * MIB / 1e6 / seconds


async def main(size_mib: int, directory: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="labfleet-bench-", dir=directory) as tmp:
        source = Path(tmp) / "artifact.img"
        root = Path(tmp) / "store"
        print(f"generating {size_mib} MiB in {tmp} ...", flush=True)
        expected = generate(source, size_mib)

        sums, puts, reads = [], [], []
        for _ in range(2):
            seconds, digest = sha256sum(source)
            assert digest == expected, "sha256sum disagrees with hashlib"
            sums.append(seconds)
            seconds, digest = await ingest(source, root)
            assert digest == expected, "LocalStore stored the wrong digest"
            puts.append(seconds)
            reads.append(await read_back(root, expected))

        best_sum, best_put, best_read = min(sums), min(puts), min(reads)
        print(f"file size            {size_mib} MiB")
        print(f"sha256sum            {rate(size_mib, best_sum):8.1f} MB/s  (best of {sums})")
        print(f"LocalStore.put_file  {rate(size_mib, best_put):8.1f} MB/s  (best of {puts})")
        print(f"LocalStore.open      {rate(size_mib, best_read):8.1f} MB/s  (verified whole read)")
        ratio = best_sum / best_put
        verdict = "meets" if ratio >= 0.8 else "MISSES"
        print(f"ingest / sha256sum   {ratio:8.2f}x  ({verdict} the 0.8x target)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", default=None, help="where to put the file and the store (one filesystem)")
    args = parser.parse_args()
    asyncio.run(main(args.size_mib, args.dir))
