"""One settings home: every ``LABFLEET_*`` variable is a field of ``labfleet.config.Settings``,
documented in the README's table, and reaches the policy it sets; a bad value names itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from labfleet.api import policies
from labfleet.api.app import create_app
from labfleet.config import Settings
from labfleet.services.flashing.service import FlashPolicy

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme_table() -> None:
    table = set(
        re.findall(r"`(LABFLEET_[A-Z0-9_]+)`", README.split("## Settings", 1)[1].split("\n## ", 1)[0])
    )
    fields = {f"LABFLEET_{name.upper()}" for name in Settings.model_fields}
    assert sorted(fields - table) == []
    assert sorted(table - fields) == []


def test_the_variables_reach_the_policies(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in {
        "POWER_OFF_SECONDS": "1.5",
        "POWER_BOOT_PATTERN": "login:",
        "FLASH_WRITE_TIMEOUT_SECONDS": "77",
        "FLASH_MAX_ATTEMPTS": "4",
        "DEPLOY_CONSOLE_PORT_FIRST": "30000",
        "DEPLOY_CONSOLE_PORT_LAST": "30009",
        "PIPELINE_MAX_RUNNING": "3",
    }.items():
        monkeypatch.setenv(f"LABFLEET_{name}", value)
    s = Settings(data_dir=tmp_path)
    assert (policies.power(s).off_s, policies.power(s).boot_pattern) == (1.5, "login:")
    assert (policies.flash(s).write_timeout_s, policies.flash(s).max_attempts) == (77.0, 4)
    assert policies.flash(s).boot_pattern == FlashPolicy().boot_pattern  # unset: the default
    assert policies.provision(s).console_ports == (30000, 30009)
    assert policies.pipelines(s).max_pipelines == 3
    app = create_app(s)
    assert app.state.power_policy == policies.power(s) and app.state.flash_policy == policies.flash(s)


def test_a_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LABFLEET_FLASH_MAX_ATTEMPTS", "0")
    with pytest.raises(ValidationError, match="flash_max_attempts"):
        Settings(data_dir=tmp_path)
    monkeypatch.delenv("LABFLEET_FLASH_MAX_ATTEMPTS")
    monkeypatch.setenv("LABFLEET_DEPLOY_CONSOLE_PORT_FIRST", "24900")
    with pytest.raises(ValidationError, match="deploy_console_port_first must not be above"):
        Settings(data_dir=tmp_path)
