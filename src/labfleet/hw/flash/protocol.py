"""Writing an image to a board: the protocol every flash driver implements.

A flash driver writes an image, verifies what the board holds against an expected
digest, and reads the running firmware's version where it can. A write always ends by
verifying: it reports its phases (stage, write, verify, done) with byte counts, and
raises rather than return if the board does not hold the image afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from labfleet.errors import Invalid


class Phase(StrEnum):
    STAGE = "stage"
    """Copying the image to the flash host."""
    WRITE = "write"
    VERIFY = "verify"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class FlashProgress:
    phase: Phase
    done: int
    """Bytes of the phase done so far."""
    total: int


Progress = Callable[[FlashProgress], None]


@dataclass(frozen=True, slots=True)
class ImageDigest:
    """An image's sha256 (hex) and size in bytes: what verifying a board compares with."""

    sha256: str
    size: int


class FileTransfer(Protocol):
    """Puts a local file at ``remote`` on the flash host; returns the remote copy's sha256 (hex).

    The copy lands whole or not at all (written under a temporary name, then renamed).
    """

    async def __call__(self, local: Path, remote: str, *, timeout: float) -> str: ...


@runtime_checkable
class FlashProtocol(Protocol):
    """Write an image, verify the board holds it, read the firmware's version."""

    async def write(self, image: Path, *, timeout: float, progress: Progress | None = None) -> ImageDigest:
        """Writes ``image`` and verifies it; returns its digest."""
        ...

    async def verify(self, expected: ImageDigest, *, timeout: float) -> bool:
        """Whether the board holds the image ``expected`` describes; raises when it cannot tell."""
        ...

    async def read_version(self, *, timeout: float) -> str | None:
        """The running firmware's version, or None where the tool cannot tell."""
        ...


def report(progress: Progress | None, phase: Phase, done: int, total: int) -> None:
    if progress is not None:
        progress(FlashProgress(phase, done, total))


async def digest_of(image: Path) -> ImageDigest:
    """The image's sha256 and size, read in a thread (images are large)."""

    def read() -> ImageDigest:
        with image.open("rb") as file:
            sha256 = hashlib.file_digest(file, "sha256").hexdigest()
        return ImageDigest(sha256, image.stat().st_size)

    try:
        return await asyncio.to_thread(read)
    except OSError as exc:
        raise Invalid(f"cannot read image {image}: {exc.strerror or exc}", field="image") from exc
