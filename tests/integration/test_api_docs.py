"""The API's docs (/docs, Swagger UI; /redoc, ReDoc) work with no way out: every asset
the pages load is served by the app itself, from the same origin, without a key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from integration.api.app import create_app
from integration.config import Settings
from integration.store.engine import open_store


class AssetLinks(HTMLParser):
    """Every src and href in a page, and the spec it points its viewer at."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [
            value for name, value in attrs if name in ("src", "href", "spec-url") and value
        ]


def asset_urls(page: str) -> list[str]:
    links = AssetLinks()
    links.feed(page)
    # Swagger UI is handed the spec's URL in its script, not in an attribute.
    return links.urls + re.findall(r"url: '([^']+)'", page)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path / 'journey.db'}"
    engine = open_store(url)
    try:
        with TestClient(create_app(Settings(api_keys=["k"], database_url=url), engine)) as client:
            yield client
    finally:
        engine.dispose()


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_only_what_the_app_serves(client: TestClient, page: str) -> None:
    answer = client.get(page)
    assert answer.status_code == 200
    assert not re.search("https?://", answer.text)  # no CDN, no web fonts
    urls = asset_urls(answer.text)
    assert any(url.endswith(".js") for url in urls)
    assert "/openapi.json" in urls
    for url in urls:
        assert re.match("/[^/]", url), url  # this origin's path, not another host
        assert client.get(url).status_code == 200, url


def test_swagger_uis_own_files_are_its_current_major_version(client: TestClient) -> None:
    """FastAPI writes OpenAPI 3.1, which Swagger UI renders from version 5 on."""
    page = client.get("/docs").text
    [script] = [url for url in asset_urls(page) if url.endswith("swagger-ui-bundle.js")]
    bundle = client.get(script).text
    assert re.search(r'"5\.\d+\.\d+"', bundle)
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
