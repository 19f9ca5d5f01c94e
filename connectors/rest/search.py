"""Paged FHIR search: follow `Bundle.link[relation=next]` until there is none.

The next link is opaque (offsets, cursors, tokens): it is followed as given,
except that a link pointing at another host than the configured base (a
proxy rewriting, or a server that knows itself by another name) is resolved
against the base, and that is said once. A next link seen before stops the
walk with an error rather than looping forever.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from connectors.errors import FatalFhirError
from connectors.rest.http import FhirHttp, Params, outcome_diagnostics

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SearchPage:
    """One page: the matching resources, with their entry index, and what came beside them."""

    url: str
    number: int
    total: int | None
    # When the server produced this page, by its own clock (Bundle.meta.lastUpdated).
    server_time: str | None = None
    resources: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    broken: list[tuple[int, str]] = field(default_factory=list)


def rebase(link: str, base_url: str) -> str:
    """Resolve a next link against the base; one on another host is taken to mean the
    same path and query on the configured base's host."""
    target = urlsplit(urljoin(base_url.rstrip("/") + "/", link))
    base = urlsplit(base_url)
    return urlunsplit((base.scheme, base.netloc, target.path, target.query, target.fragment))


async def search(
    http: FhirHttp,
    base_url: str,
    resource_type: str,
    params: Params,
) -> AsyncIterator[SearchPage]:
    """Yield each page of `GET [base]/[type]?params`, following next links."""
    base_url = base_url.rstrip("/")
    url: str | None = f"{base_url}/{resource_type}"
    query: Params | None = params
    seen: set[str] = set()
    warned_rebase = False
    number = 0
    fetched = 0
    while url is not None:
        number += 1
        bundle = await http.get_json(url, query)
        if bundle.get("resourceType") != "Bundle":
            raise FatalFhirError(url, 200, f"page is a {bundle.get('resourceType')}, not a Bundle")
        page = _read_page(bundle, url, number, resource_type)
        fetched += len(page.resources) + len(page.broken)
        link = next_link(bundle)
        if link is None and page.total is not None and fetched < page.total:
            # Some servers (an in-memory Medplum router, for one) cap a page and give no next link.
            page.warnings.append(
                f"the server counts {page.total} matches but sent {fetched} and no next link; "
                "raise page_size or ask the server to page"
            )
        yield page
        if link is None:
            return
        resolved = rebase(link, base_url)
        link_host = urlsplit(link).netloc
        if link_host and link_host != urlsplit(resolved).netloc and not warned_rebase:
            log.warning(
                "next links of %s name another host; following them on the configured base",
                base_url,
            )
            warned_rebase = True
        if resolved in seen:
            raise FatalFhirError(
                resolved, None, "the server sent a next link already followed (a loop)"
            )
        seen.add(resolved)
        url, query = resolved, None


def next_link(bundle: dict[str, Any]) -> str | None:
    links = bundle.get("link")
    for link in links if isinstance(links, list) else []:
        if (
            isinstance(link, dict)
            and link.get("relation") == "next"
            and isinstance(link.get("url"), str)
        ):
            return str(link["url"])
    return None


def _read_page(bundle: dict[str, Any], url: str, number: int, resource_type: str) -> SearchPage:
    total = bundle.get("total")
    meta = bundle.get("meta")
    server_time = meta.get("lastUpdated") if isinstance(meta, dict) else None
    page = SearchPage(
        url,
        number,
        total if isinstance(total, int) else None,
        server_time if isinstance(server_time, str) else None,
    )
    entries = bundle.get("entry")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict):
            page.broken.append((index, "entry is not a JSON object"))
            continue
        resource = entry.get("resource")
        mode = (
            (entry.get("search") or {}).get("mode")
            if isinstance(entry.get("search"), dict)
            else None
        )
        if isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome":
            diagnostics = outcome_diagnostics(resource)
            if diagnostics:
                page.warnings.append(diagnostics)
            continue
        if mode == "include":
            continue  # asked-for context, not a match: this search does not store it
        if not isinstance(resource, dict):
            page.broken.append((index, "entry has no resource"))
            continue
        if resource.get("resourceType") != resource_type:
            page.broken.append(
                (
                    index,
                    f"entry is a {resource.get('resourceType')!s:.40} in a {resource_type} search",
                )
            )
            continue
        page.resources.append((index, resource))
    return page
