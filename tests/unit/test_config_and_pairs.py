"""Settings and the CLI's key=value options."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from labfleet.cli.pairs import merge, parse
from labfleet.config import Settings, normalize_database_url


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABFLEET_DATABASE_URL", raising=False)
    monkeypatch.setenv("LABFLEET_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path}/labfleet.db"
    assert settings.effective_secret_key_file == tmp_path / "secret.key"


def test_database_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABFLEET_DATABASE_URL", "postgresql://lf@db/labfleet")
    assert Settings().effective_database_url == "postgresql+asyncpg://lf@db/labfleet"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("sqlite:////var/lib/x.db", "sqlite+aiosqlite:////var/lib/x.db"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
    ],
)
def test_plain_urls_get_the_async_driver(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


def test_pairs_nest_and_type() -> None:
    assert parse(["ssh.port=2222", "ssh.username=root", "kvm=true", 'peripherals=["a"]'], option="--set") == {
        "ssh": {"port": "2222", "username": "root"},
        "kvm": True,
        "peripherals": ["a"],
    }
    assert parse(["rack=true"], option="--label", raw=True) == {"rack": "true"}


@pytest.mark.parametrize("bad", ["novalue", "=x", "a=1 a.b=2"])
def test_pairs_refuse_nonsense(bad: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse(bad.split(" "), option="--set")


def test_merge_is_deep() -> None:
    assert merge({"ssh": {"port": 22, "username": "a"}}, {"ssh": {"port": 2222}}) == {
        "ssh": {"port": 2222, "username": "a"}
    }


def test_cli_target_comes_from_flags_then_environment_then_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labfleet.cli.client import DEFAULT_URL, resolve

    config = tmp_path / "cli.toml"
    config.write_text('url = "http://file:1/"\ntoken = "lf_file"\n')
    monkeypatch.setenv("LABFLEET_CLI_CONFIG", str(config))
    monkeypatch.delenv("LABFLEET_URL", raising=False)
    monkeypatch.delenv("LABFLEET_TOKEN", raising=False)
    assert (resolve(None, None).url, resolve(None, None).token) == ("http://file:1", "lf_file")
    monkeypatch.setenv("LABFLEET_URL", "http://env:2")
    monkeypatch.setenv("LABFLEET_TOKEN", "lf_env")
    assert (resolve(None, None).url, resolve(None, None).token) == ("http://env:2", "lf_env")
    assert (resolve("http://flag:3", "lf_flag").url, resolve("http://flag:3", "lf_flag").token) == (
        "http://flag:3",
        "lf_flag",
    )
    config.unlink()
    monkeypatch.delenv("LABFLEET_URL")
    assert resolve(None, None).url == DEFAULT_URL
