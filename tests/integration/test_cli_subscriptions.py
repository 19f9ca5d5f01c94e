"""`journey subscriptions` and `journey feed replay` as an operator runs them: a real
process on a real store; bad input is one clear line and exit code 1."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import throwaway_store_url
from tests.servers import JOURNEY


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with throwaway_store_url("sqlite", request, tmp_path) as url:
        yield url


def journey(store: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "JOURNEY_DATABASE_URL": store}
    return subprocess.run(
        [JOURNEY, *args], capture_output=True, text=True, cwd=folder, env=env, timeout=120
    )


def test_an_operator_adds_lists_replays_and_removes_a_subscription(
    store: str, tmp_path: Path
) -> None:
    added = journey(
        store, tmp_path, "subscriptions", "add", "https://care.example/hook",
        "--type", "record.added", "--source", "clinic", "--full",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    lines = dict(line.split(" ", 1) for line in added.stdout.splitlines() if " " in line)
    sub = lines["subscription"]
    assert sub.startswith("whk_")
    assert lines["secret"].startswith("whsec_")

    listed = journey(store, tmp_path, "subscriptions", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [item] = orjson.loads(listed.stdout)
    assert item["id"] == sub
    assert item["types"] == ["record.added"]
    assert item["sources"] == ["clinic"]
    assert item["payload"] == "full"
    assert "secret" not in item
    table = journey(store, tmp_path, "subscriptions", "list")
    assert sub in table.stdout
    assert "https://care.example/hook" in table.stdout

    replayed = journey(store, tmp_path, "feed", "replay", sub)
    assert replayed.returncode == 0, replayed.stderr
    assert "delivers again after the start" in replayed.stdout
    rotated = journey(store, tmp_path, "subscriptions", "rotate-secret", sub)
    assert rotated.returncode == 0, rotated.stderr
    assert "the previous secret also signs until" in rotated.stdout
    letters = journey(store, tmp_path, "subscriptions", "dead-letters", sub)
    assert f"No dead letters for {sub}." in letters.stdout

    removed = journey(store, tmp_path, "subscriptions", "remove", sub)
    assert removed.returncode == 0, removed.stderr
    assert orjson.loads(journey(store, tmp_path, "subscriptions", "list", "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["subscriptions", "add", "ftp://x.example/hook"], "subscription url: an absolute http"),
        (
            ["subscriptions", "add", "https://x.example", "--type", "record.eaten"],
            "subscription types: unknown event type 'record.eaten'",
        ),
        (["subscriptions", "remove", "whk_nope"], "no webhook subscription 'whk_nope'"),
        (["feed", "replay", "whk_nope"], "no webhook subscription 'whk_nope'"),
        (["subscriptions", "dead-letters", "whk_nope"], "no webhook subscription 'whk_nope'"),
    ],
)
def test_bad_input_is_one_clear_line(
    store: str, tmp_path: Path, args: list[str], says: str
) -> None:
    done = journey(store, tmp_path, *args)
    assert done.returncode == 1
    assert says in done.stderr
    assert "Traceback" not in done.stderr


def test_a_replay_from_an_event_the_feed_never_issued_is_refused(
    store: str, tmp_path: Path
) -> None:
    added = journey(store, tmp_path, "subscriptions", "add", "https://care.example/hook")
    sub = added.stdout.split()[1]
    done = journey(store, tmp_path, "feed", "replay", sub, "--from", "evt_42")
    assert done.returncode == 1
    assert "event 'evt_42': not an event id of this feed" in done.stderr
