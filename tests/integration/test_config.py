"""One settings object: environment with the JOURNEY_ prefix, then an optional TOML file."""

from __future__ import annotations

import traceback
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
        "JOURNEY_SOURCES",
        "JOURNEY_PUSH_CLIENTS",
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


HOSPITAL = (
    '[[sources]]\nname = "hospital"\nkind = "provider"\n'
    'base_url = "https://ehr.example/fhir/"\nmode = "rest"\n'
)
PAYER = '[[sources]]\nkind = "payer"\nbase_url = "https://plan.example/fhir"\n'


def test_sources_and_push_clients_load_typed(tmp_path: Path) -> None:
    (tmp_path / "journey.toml").write_text(
        HOSPITAL
        + 'validate = false\n[sources.members]\nidentifiers = ["urn:m|1"]\n'
        + PAYER
        + 'name = "plan"\nmode = "bulk"\n'
        + '[[push_clients]]\nsource = "clinic"\nkey_env = "CLINIC_PUSH_KEY"\n'
    )
    settings = load_settings()
    hospital, plan = settings.sources
    assert (hospital.base_url, hospital.validate_resources) == ("https://ehr.example/fhir", False)
    assert hospital.members is not None
    assert hospital.members.identifiers == ("urn:m|1",)
    assert (plan.name, plan.mode) == ("plan", "bulk")
    assert [(c.source, c.key_env) for c in settings.push_clients] == [("clinic", "CLINIC_PUSH_KEY")]


@pytest.mark.parametrize(
    ("second", "names"),
    [
        ('name = "plan"\nmode = "rest"\npage_size = "many"\n', " (source 'plan'): page_size: "),
        ('name = "plan"\nmode = "stream"\n', " (source 'plan'): mode: Input should be 'rest' or"),
        ('name = "hospital"\nmode = "rest"\n', " (source 'hospital'): name: used twice"),
        (
            'name = "plan"\nmode = "rest"\n[sources.members]\nidentifiers = ["urn:m"]\n',
            " (source 'plan'): members.identifiers: ",
        ),
        ('name = "two words"\nmode = "rest"\n', ": name: String should match pattern"),
        ('mode = "rest"\n', ": name: Field required"),
    ],
    ids=["wrong-type", "unknown-mode", "duplicate-name", "nested-key", "bad-name", "no-name"],
)
def test_bad_source_table_fails_at_load_naming_file_index_and_key(
    tmp_path: Path, second: str, names: str
) -> None:
    (tmp_path / "journey.toml").write_text(HOSPITAL + PAYER + second)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"journey.toml: sources[1]{names}"), str(caught.value)


@pytest.mark.parametrize(
    ("second", "names"),
    [
        ('source = "lab"\nkey_enc = "LAB_KEY"\n', "push_clients[1] (source 'lab'): key_enc: "),
        ('source = "lab"\nkey_env = 7\n', "push_clients[1] (source 'lab'): key_env: "),
        ('source = "lab/x"\nkey_env = "LAB_KEY"\n', "push_clients[1]: source: String should"),
        ('key_env = "LAB_KEY"\n', "push_clients[1]: source: Field required"),
    ],
    ids=["unknown-key", "wrong-type", "bad-name", "no-source"],
)
def test_bad_push_client_table_fails_at_load_naming_file_index_and_key(
    tmp_path: Path, second: str, names: str
) -> None:
    first = '[[push_clients]]\nsource = "clinic"\nkey_env = "CLINIC_PUSH_KEY"\n'
    (tmp_path / "journey.toml").write_text(first + "[[push_clients]]\n" + second)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"journey.toml: {names}"), str(caught.value)


@pytest.mark.parametrize(
    ("table", "names"),
    [
        (
            '[[push_clients]]\nsource = "clinic"\nkey = "s3cret-push-key"\n',
            "journey.toml: push_clients[0] (source 'clinic'): key: ",
        ),
        (
            HOSPITAL + 'auth = { type = "bearer", token = "s3cret-push-key" }\n',
            "journey.toml: sources[0] (source 'hospital'): auth.token: ",
        ),
        (
            HOSPITAL + 'auth = { type = "bearer", token_env = ["s3cret-push-key"] }\n',
            "journey.toml: sources[0] (source 'hospital'): auth.token_env: ",
        ),
    ],
    ids=["push-key-inline", "token-inline", "token-where-its-name-belongs"],
)
def test_a_secret_written_into_a_table_is_never_in_the_error(
    tmp_path: Path, table: str, names: str
) -> None:
    (tmp_path / "journey.toml").write_text(table)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(names), str(caught.value)
    # Nor in the traceback a server's log would print: the pydantic error quotes the input.
    printed = "".join(traceback.format_exception(caught.value))
    assert "s3cret" not in printed


def test_bad_sources_from_the_environment_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "journey.toml").write_text(HOSPITAL)
    monkeypatch.setenv(
        "JOURNEY_SOURCES",
        '[{"name": "ehr", "kind": "clinic", "base_url": "https://e.example", "mode": "rest"}]',
    )
    with pytest.raises(ConfigError, match=r"^JOURNEY_SOURCES: sources\[0\]: kind: "):
        load_settings()


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('id = "app"\nkey_env = "APP_KEY"\n', "clients[0] (client 'app'): scopes: Field required"),
        (
            'id = "app"\nscopes = []\nkey_env = "K"\n',
            "clients[0] (client 'app'): scopes: List should",
        ),
        (
            'id = "app"\nscopes = ["x"]\nkey_sha256 = "abc"\n',
            "clients[0] (client 'app'): key_sha256:",
        ),
        ('id = "a b"\nscopes = ["x"]\n', "clients[0]: id: String should match"),
    ],
)
def test_a_bad_clients_table_names_itself(tmp_path: Path, table: str, says: str) -> None:
    config = tmp_path / "journey.toml"
    config.write_text(f"[[clients]]\n{table}", encoding="utf-8")
    with pytest.raises(ConfigError) as failed:
        load_settings(config)
    assert says in str(failed.value)


def test_oauth_needs_its_issuer_audience_and_keys_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="oauth_issuer, oauth_audience and oauth_jwks_url"):
        load_settings(None, oauth_issuer="https://issuer.test")


def test_oauth_refuses_symmetric_algorithms() -> None:
    with pytest.raises(ConfigError, match="'HS256' is not accepted"):
        load_settings(None, oauth_algorithms="RS256,HS256")
