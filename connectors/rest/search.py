"""Paged FHIR search and type history: follow `Bundle.link[relation=next]` until there
is none.

The next link is opaque (offsets, cursors, tokens): it is followed as given,
except that a link pointing at another host than the configured base (a
proxy rewriting, or a server that knows itself by another name) is resolved
against the base, and that is said once. A next link seen before stops the
walk with an error rather than looping forever.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from connectors.errors import FatalFhirError
from connectors.rest.http import FhirHttp, Params, outcome_diagnostics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Deletion:
    """A DELETE entry of a history page: which resource, its version, and when, by the
    server's clock (`response.lastModified`), where the server says."""

    resource_id: str
    version_id: str | None
    when: str | None


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
    # Only on history pages: the resources the server deleted.
    deleted: list[tuple[int, Deletion]] = field(default_factory=list)


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
    async for page in _follow(http, base_url, resource_type, "", params, _read_page):
        yield page


async def history(
    http: FhirHttp,
    base_url: str,
    resource_type: str,
    params: Params,
) -> AsyncIterator[SearchPage]:
    """Yield each page of `GET [base]/[type]/_history?params` (`_since`, `_count`), with
    its versions as resources and its DELETE entries as deletions."""
    async for page in _follow(http, base_url, resource_type, "/_history", params, _read_history):
        yield page


PageReader = Callable[[dict[str, Any], str, int, str], SearchPage]


async def _follow(
    http: FhirHttp,
    base_url: str,
    resource_type: str,
    suffix: str,
    params: Params,
    read: PageReader,
) -> AsyncIterator[SearchPage]:
    base_url = base_url.rstrip("/")
    url: str | None = f"{base_url}/{resource_type}{suffix}"
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
        page = read(bundle, url, number, resource_type)
        fetched += len(page.resources) + len(page.broken) + len(page.deleted)
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


def _read_history(bundle: dict[str, Any], url: str, number: int, resource_type: str) -> SearchPage:
    """A history page: entries with a resource are versions (read as a search page
    reads them); a DELETE entry, or one without a resource, is a deletion, named by its
    request URL or fullUrl (`[type]/[id]`, optionally `/_history/[version]`)."""
    kept: list[Any] = []
    page_deleted: list[tuple[int, Deletion]] = []
    broken: list[tuple[int, str]] = []
    entries = bundle.get("entry")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        request = entry.get("request") if isinstance(entry, dict) else None
        method = request.get("method") if isinstance(request, dict) else None
        if isinstance(entry, dict) and (method == "DELETE" or entry.get("resource") is None):
            deletion = deletion_of(entry, resource_type)
            if deletion is None:
                broken.append((index, "a DELETE entry that names no resource of this type"))
            else:
                page_deleted.append((index, deletion))
            kept.append({})  # keeps the other entries' indexes: read below as nothing
        else:
            kept.append(entry)
    page = _read_page({**bundle, "entry": kept}, url, number, resource_type)
    # The placeholders read as "entry has no resource": they are deletions, not broken.
    placeholders = {index for index, _ in page_deleted} | {index for index, _ in broken}
    page.broken = [(i, problem) for i, problem in page.broken if i not in placeholders] + broken
    page.deleted = page_deleted
    return page


def deletion_of(entry: dict[str, Any], resource_type: str) -> Deletion | None:
    """The resource a history or Bulk deleted-file entry deletes, or None when it names
    none of `resource_type`."""
    request = entry.get("request")
    response = entry.get("response")
    names = [
        request.get("url") if isinstance(request, dict) else None,
        entry.get("fullUrl"),
    ]
    for name in names:
        if not isinstance(name, str):
            continue
        parts = urlsplit(name).path.strip("/").split("/")
        version: str | None = None
        if len(parts) >= 4 and parts[-2] == "_history":
            version, parts = parts[-1], parts[:-2]
        if len(parts) >= 2 and parts[-2] == resource_type and parts[-1]:
            if version is None and isinstance(response, dict):
                version = _etag_version(response.get("etag"))
            when = response.get("lastModified") if isinstance(response, dict) else None
            return Deletion(parts[-1][:64], version, when if isinstance(when, str) else None)
    return None


def deleted_in(bundle: dict[str, Any]) -> list[tuple[str, Deletion]]:
    """(type, deletion) for each DELETE entry of a Bundle (a line of a Bulk export's
    deleted file); entries that name no `[type]/[id]` are left out."""
    found: list[tuple[str, Deletion]] = []
    entries = bundle.get("entry") if bundle.get("resourceType") == "Bundle" else None
    for entry in entries if isinstance(entries, list) else []:
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict) or request.get("method") != "DELETE":
            continue
        url = request.get("url")
        parts = urlsplit(url).path.strip("/").split("/") if isinstance(url, str) else []
        if len(parts) >= 4 and parts[-2] == "_history":
            parts = parts[:-2]
        if len(parts) < 2:
            continue
        deletion = deletion_of(entry, parts[-2])
        if deletion is not None:
            found.append((parts[-2], deletion))
    return found


def _etag_version(etag: Any) -> str | None:
    """W/"3" -> "3"."""
    if not isinstance(etag, str):
        return None
    value = etag.removeprefix("W/").strip('"')
    return value or None
