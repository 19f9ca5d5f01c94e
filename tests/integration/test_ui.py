"""The web UI in a real browser: Debian's Chromium driven by Playwright, against
`journey serve`'s app on loopback, with the demo population in the store. A care
navigator signs in with an API key, finds a person and reads their journey (safety
flags first, three lanes, a PROM chart); a data team reads the console and decides a
possible match; a client limited to a population sees only it; every page view is
audited; axe finds no serious or critical accessibility violation on any page."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import Engine, select

from integration.api.app import create_app
from integration.cli.demo_population import write_sample
from integration.config import Settings
from integration.ingest.pipeline import IngestPipeline
from integration.store.schema import audit_events
from mappings.consent import CONSENT_SCOPE
from mappings.rulepack import RulePack
from tests.conftest import person, write_ndjson
from tests.servers import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ADMIN = "ui-admin-key"
CLINIC = "ui-clinic-key"
# No skip when the browser is missing: scripts/test installs Debian's chromium, and a
# UI that was never tried must not pass.
pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
ALICE = {"name": [{"family": "Smith", "given": ["Alice"]}]}


class Served:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, engine), host="127.0.0.1", port=self.port, log_level="error"
            )
        )

    def __enter__(self) -> Served:
        threading.Thread(target=self.server.run, daemon=True).start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True


@pytest.fixture
def served(
    engine: Engine, pack: RulePack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Served]:
    for source, path in write_sample(tmp_path / "data", seed=7, people=40).items():
        IngestPipeline(engine, pack, source, 16 << 20).run([path])
    # A possible match for the review queue (one SSN, two birth dates) and a line that
    # cannot be read, for the quarantine.
    bad = tmp_path / "bad.ndjson"
    write_ndjson(bad, person("ui-a", ssn="123-45-6788", **ALICE), "{not json")
    IngestPipeline(engine, pack, "ui-clinic", 1 << 20).run([bad])
    other = person("ui-b", ssn="123-45-6788", birth_date="1999-09-09", **ALICE)
    IngestPipeline(engine, pack, "ui-plan", 1 << 20).run(
        [write_ndjson(tmp_path / "b.ndjson", other)]
    )
    monkeypatch.setenv("UI_CLINIC_KEY", CLINIC)
    settings = Settings(
        api_keys=[ADMIN],
        database_url=str(engine.url),
        clients=[
            {
                "id": "clinic-navigator",
                "scopes": ["journey/people.read"],
                "key_env": "UI_CLINIC_KEY",
                "sources": ["riverside-clinic"],
            }
        ],
    )
    with Served(settings, engine) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def sign_in(page: Page, served: Served, key: str, then: str = "/ui/people") -> None:
    page.goto(served.url + then)
    assert "/ui/login" in page.url
    page.fill("#credential", key)
    page.click("button[type=submit]")
    assert page.url.endswith(then), page.url


def no_serious_violations(page: Page) -> None:
    found = Axe().run(page).response["violations"]
    serious = [
        (v["id"], v["impact"], len(v["nodes"]))
        for v in found
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], serious


def test_a_navigator_signs_in_finds_a_person_and_reads_their_journey(
    page: Page, served: Served
) -> None:
    page.goto(served.url + "/ui/people")
    no_serious_violations(page)  # the login page
    page.fill("#credential", "not-a-key")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "That key or token is not valid here."
    page.fill("#credential", ADMIN)
    page.click("button[type=submit]")
    assert page.url.endswith("/ui/people")
    assert page.locator("table.people tbody tr").count() == 40 + 2
    no_serious_violations(page)
    # By identifier (with or without its system) and by birth date.
    page.fill("#identifier", "123-45-6788")
    page.click("text=Search")
    assert page.locator("table.people tbody tr").count() == 2, "the possible pair"
    page.fill("#identifier", "http://hl7.org/fhir/sid/us-ssn|123-45-6788")
    page.fill("#birth_date", "1999-09-09")
    page.click("text=Search")
    assert page.locator("table.people tbody tr").all_inner_texts() == [
        "Alice Smith\t1999-09-09\tui-plan"
    ]
    page.fill("#identifier", "")
    page.fill("#birth_date", "09/09/1999")
    page.click("text=Search")
    assert page.get_by_role("alert").inner_text() == (
        "A birth date is written YYYY-MM-DD (or YYYY-MM, or YYYY)."
    )
    page.fill("#birth_date", "")
    page.fill("#name", "gus mor")
    page.click("text=Search")
    rows = page.locator("table.people tbody tr")
    assert rows.count() == 1
    rows.first.get_by_role("link").click()
    assert page.locator("h1").inner_text() == "Gus Moreau"
    # The self-harm flags come before anything else, as an alert.
    safety = page.get_by_role("alert")
    assert "Self-harm risk" in safety.inner_text()
    assert safety.inner_text().count("Self-harm risk") == 2
    lanes = page.locator("table.timeline thead th").all_inner_texts()
    assert lanes == ["Day", "Tell me what's wrong", "Fix what's wrong", "Keep me well"]
    chart = page.locator("figure.prom svg")
    assert chart.count() == 1
    assert "reliable improvement" in (chart.get_attribute("aria-label") or "")
    assert page.locator("figure.prom rect.marker.improvement").count() == 3
    first = page.locator("article.record").first
    first.locator("summary").click()
    assert "Rule questionnaire.screen.positive" in first.inner_text()
    no_serious_violations(page)


def test_the_console_shows_sources_quarantine_measures_and_decides_a_match(
    page: Page, served: Served, engine: Engine
) -> None:
    sign_in(page, served, ADMIN, "/ui/console")
    sources = page.locator("section[aria-labelledby=sources-title] tbody th").all_inner_texts()
    assert sources == ["riverside-clinic", "summit-health-plan", "ui-clinic", "ui-plan"]
    quarantine = page.locator("section[aria-labelledby=quarantine-title] tbody tr")
    assert quarantine.count() == 1
    assert "Fix it at the source and send it again" in quarantine.inner_text()
    assert "bad.ndjson" in quarantine.inner_text()
    assert page.locator("section[aria-labelledby=measures-title] tbody tr").count() >= 10
    no_serious_violations(page)
    pair = page.locator("article.pair")
    assert pair.count() == 1
    assert "1999-09-09" in pair.inner_text()
    pair.get_by_label("Reason").fill("same SSN; the plan's birth date is a typo")
    pair.get_by_role("button", name="Link: one person").click()
    assert page.url.endswith("/ui/console#review")
    assert page.locator("article.pair").count() == 0
    assert "No pairs waiting." in page.locator("#review").inner_text()


def test_a_change_without_the_sessions_csrf_token_is_refused(page: Page, served: Served) -> None:
    sign_in(page, served, ADMIN, "/ui/console")
    answer = page.request.post(
        served.url + "/ui/review",
        form={
            "csrf": "forged",
            "a_source": "ui-clinic",
            "a_patient": "ui-a",
            "b_source": "ui-plan",
            "b_patient": "ui-b",
            "decision": "match",
            "reason": "forged",
        },
    )
    assert answer.status == 400
    assert "The form has expired" in answer.text()
    page.reload()
    assert page.locator("article.pair").count() == 1, "nothing was decided"


def test_a_client_limited_to_a_population_sees_only_it(page: Page, served: Served) -> None:
    sign_in(page, served, ADMIN)
    rows = page.locator("table.people tbody tr")
    everyone = [
        (row.inner_text(), row.get_by_role("link").get_attribute("href")) for row in rows.all()
    ]
    outsider = next(href for text, href in everyone if "riverside-clinic" not in text)
    page.context.clear_cookies()
    sign_in(page, served, CLINIC)
    shown = page.locator("table.people tbody tr").all_inner_texts()
    assert 0 < len(shown) < len(everyone)
    assert all("riverside-clinic" in row for row in shown)
    page.goto(served.url + str(outsider))
    assert page.locator("h1").inner_text() == "Not available"
    assert "No person with that id." in page.get_by_role("alert").inner_text()
    # No operations or linking scope: the console shows the measures only.
    page.goto(served.url + "/ui/console")
    assert page.locator("#sources-title").count() == 0
    assert page.locator("#review-title").count() == 0
    assert page.locator("#measures-title").count() == 1


def test_page_views_are_audited_and_signing_out_ends_the_session(
    page: Page, served: Served, engine: Engine
) -> None:
    sign_in(page, served, ADMIN)
    page.locator("table.people tbody a").first.click()
    person_path = page.url.removeprefix(served.url)
    person_id = person_path.rsplit("/", 1)[-1]
    page.get_by_role("button", name="Sign out").click()
    assert "/ui/login" in page.url
    page.goto(served.url + person_path)
    assert "/ui/login" in page.url, "the old session no longer works"
    deadline = time.monotonic() + 5
    while True:
        with engine.connect() as conn:
            rows: list[Any] = conn.execute(
                select(audit_events.c.client, audit_events.c.status, audit_events.c.path).where(
                    audit_events.c.person_id == person_id
                )
            ).all()
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert rows, "the page view left its audit row"
    assert rows[0].client.startswith("api-key:key-")  # the admin key's client
    assert (rows[0].status, rows[0].path) == (200, person_path)


def test_a_privacy_consent_withholds_the_person_from_the_viewer(
    page: Page, served: Served, engine: Engine, pack: RulePack, tmp_path: Path
) -> None:
    sign_in(page, served, ADMIN)
    page.fill("#identifier", "http://hl7.org/fhir/sid/us-ssn|123-45-6788")
    page.fill("#birth_date", "1970-01-01")
    page.click("text=Search")
    link = page.locator("table.people tbody a")
    assert link.count() == 1
    path = link.get_attribute("href")
    opt_out = {
        "resourceType": "Consent",
        "id": "ui-opt-out",
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/ui-a"},
        "provision": {"type": "deny"},
    }
    consent = write_ndjson(tmp_path / "consent.ndjson", opt_out)
    IngestPipeline(engine, pack, "ui-clinic", 1 << 20).run([consent])
    page.reload()
    assert page.locator("table.people tbody a").count() == 0
    page.goto(served.url + str(path))
    assert "No person with that id." in page.get_by_role("alert").inner_text()
