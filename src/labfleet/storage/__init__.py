"""Artifact bytes: the ``ArtifactStore`` protocol and its stores; the only code that touches them."""

from labfleet.storage.local import LocalStore
from labfleet.storage.protocol import ArtifactStore, StoredBlob, Verification, check_digest

__all__ = ["ArtifactStore", "LocalStore", "StoredBlob", "Verification", "check_digest"]
