"""The secret box and the audit log's redaction."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from labfleet.errors import LabfleetError
from labfleet.secretbox import SecretBox
from labfleet.services.core.audit import REDACTED, redact
from labfleet.services.inventory.credentials import reseal, seal


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "secret.key"
    box = SecretBox.from_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Long enough that its appearing in the base64 token by chance is out of the question.
    secret = "correct-horse-battery-staple"
    sealed = box.seal({"password": secret})
    assert secret not in sealed
    assert SecretBox.from_key_file(path).open(sealed) == {"password": secret}


def test_another_key_cannot_open() -> None:
    sealed = SecretBox(Fernet.generate_key()).seal({"password": "pw"})
    with pytest.raises(LabfleetError):
        SecretBox(Fernet.generate_key()).open(sealed)


def test_seal_and_reseal_keep_what_is_not_replaced() -> None:
    box = SecretBox(Fernet.generate_key())
    assert seal(box, password=None, private_key=None) is None
    sealed = seal(box, password="a")
    assert sealed is not None
    resealed = reseal(box, sealed, private_key="k", password=None)
    assert box.open(resealed or "") == {"password": "a", "private_key": "k"}


def test_redaction_reaches_nested_secrets_and_spares_flags() -> None:
    value = {
        "ssh": {"password": "pw", "username": "root"},
        "api_token": "t",
        "power_secret_set": True,
        "items": [{"private_key": "k"}],
        "secret": None,
    }
    assert redact(value) == {
        "ssh": {"password": REDACTED, "username": "root"},
        "api_token": REDACTED,
        "power_secret_set": True,
        "items": [{"private_key": REDACTED}],
        "secret": None,
    }
