"""One settings object: environment with the JOURNEY_ prefix, then an optional TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from integration.config import load_settings
from integration.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "JOURNEY_DATABASE_URL",
        "JOURNEY_API_KEYS",
        "JOURNEY_CONFIG",
        "JOURNEY_PORT",
        "JOURNEY_PAGE_SIZE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_an_embedded_store_on_loopback() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///journey.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.api_keys == []


def test_environment_with_prefix_and_comma_separated_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEY_DATABASE_URL", "sqlite:////tmp/x.db")
    monkeypatch.setenv("JOURNEY_API_KEYS", "alpha, beta,,gamma ")
    settings = load_settings()
    assert settings.database_url == "sqlite:////tmp/x.db"
    assert settings.api_keys == ["alpha", "beta", "gamma"]


def test_config_file_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "custom.toml"
    path.write_text('port = 9001\npage_size = 20\napi_keys = ["from-file"]\n')
    monkeypatch.setenv("JOURNEY_CONFIG", str(path))
    monkeypatch.setenv("JOURNEY_PORT", "9002")
    settings = load_settings()
    assert (settings.port, settings.page_size, settings.api_keys) == (9002, 20, ["from-file"])


def test_journey_toml_in_the_working_directory_is_picked_up(tmp_path: Path) -> None:
    (tmp_path / "journey.toml").write_text('database_url = "sqlite:///other.db"\n')
    assert load_settings().database_url == "sqlite:///other.db"


def test_explicit_overrides_beat_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEY_DATABASE_URL", "sqlite:///env.db")
    assert load_settings(database_url="sqlite:///flag.db").database_url == "sqlite:///flag.db"


def test_bad_value_names_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"'port'.*JOURNEY_PORT"):
        load_settings(port=70000)


def test_unknown_key_in_the_file_names_it(tmp_path: Path) -> None:
    (tmp_path / "journey.toml").write_text("databse_url = 'typo'\n")
    with pytest.raises(ConfigError, match="databse_url"):
        load_settings()


def test_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JOURNEY_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings()


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "journey.toml").write_text("port = \n")
    with pytest.raises(ConfigError, match=r"journey\.toml: not valid TOML"):
        load_settings()
