"""FHIR Bulk Data Access (v2) `$export`: kick off, poll, download, delete.

Knows nothing of the store: it gives status URLs, manifests and NDJSON bytes.
Every request goes through the source's HTTP policy (`FhirHttp`): retries on
429/5xx and connection errors, `Retry-After`, concurrency and rate limits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from connectors.errors import ExportExpired, ExportTimedOut, FatalFhirError
from connectors.rest.http import FhirHttp, Params, retry_after_seconds
from connectors.streams import QueuedStream

NDJSON = "application/fhir+ndjson"
DEFAULT_POLL_SECONDS = 2.0
MAX_POLL_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ExportFile:
    resource_type: str
    url: str
    count: int | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    transaction_time: str
    requires_access_token: bool
    output: tuple[ExportFile, ...]
    error: tuple[ExportFile, ...]
    # Bundles of DELETE entries: what the source deleted since `_since`.
    deleted: tuple[ExportFile, ...] = ()


def parse_manifest(body: dict[str, Any], status_url: str) -> Manifest:
    transaction_time = body.get("transactionTime")
    if not isinstance(transaction_time, str):
        raise FatalFhirError(status_url, 200, "the export manifest has no transactionTime")

    def files(key: str) -> tuple[ExportFile, ...]:
        listed = body.get(key) or []
        if not isinstance(listed, list):
            raise FatalFhirError(status_url, 200, f"the export manifest's {key} is not a list")
        found = []
        for item in listed:
            if isinstance(item, dict) and isinstance(item.get("url"), str):
                count = item.get("count")
                found.append(
                    ExportFile(
                        str(item.get("type") or "?"),
                        item["url"],
                        count if isinstance(count, int) else None,
                    )
                )
        return tuple(found)

    return Manifest(
        transaction_time,
        bool(body.get("requiresAccessToken", True)),
        files("output"),
        files("error"),
        files("deleted"),
    )


class BulkExport:
    """One source's $export conversation."""

    def __init__(
        self,
        http: FhirHttp,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.http = http
        self.clock = clock
        self.sleep = sleep

    async def kick_off(self, url: str, params: Params) -> str:
        """Start an export; returns the status URL (Content-Location of the 202)."""
        response = await self.http.send(
            "GET", url, params, {"Prefer": "respond-async", "Accept": "application/fhir+json"}
        )
        location: str | None = response.headers.get("Content-Location")
        if response.status_code != 202 or not location:
            raise FatalFhirError(
                str(response.request.url),
                response.status_code,
                "an export kick-off must answer 202 Accepted with a Content-Location",
            )
        return location

    async def wait_for_manifest(
        self,
        status_url: str,
        deadline_seconds: float,
        on_progress: Callable[[str | None], None] | None = None,
    ) -> Manifest:
        """Poll the status URL until the manifest comes, honouring Retry-After."""
        started = self.clock()
        progress: str | None = None
        while True:
            try:
                response = await self.http.send("GET", status_url)
            except FatalFhirError as exc:
                if exc.status in (404, 410):
                    raise ExportExpired(status_url, exc.status) from exc
                raise
            if response.status_code == 200:
                try:
                    body = orjson.loads(response.content)
                except orjson.JSONDecodeError as exc:
                    raise FatalFhirError(status_url, 200, "the manifest is not JSON") from exc
                if not isinstance(body, dict):
                    raise FatalFhirError(status_url, 200, "the manifest is not a JSON object")
                return parse_manifest(body, status_url)
            progress = response.headers.get("X-Progress") or progress
            if on_progress is not None:
                on_progress(progress)
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            wait = min(MAX_POLL_SECONDS, wait if wait is not None else DEFAULT_POLL_SECONDS)
            if self.clock() - started + wait > deadline_seconds:
                raise ExportTimedOut(status_url, deadline_seconds, progress)
            await self.sleep(wait)

    async def download(
        self, file: ExportFile, requires_access_token: bool, into: QueuedStream
    ) -> int:
        """Stream one output file into `into` (then close it); returns bytes read.
        Without `requiresAccessToken` the URL is fetched with no credentials: it
        may be a pre-signed link on another host, which must not see our token."""
        size = 0
        try:
            async with self.http.stream(
                file.url, {"Accept": NDJSON}, authenticated=requires_access_token
            ) as response:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    await asyncio.to_thread(into.put, chunk)
        except BaseException as exc:
            into.fail(exc)
            raise
        into.close()
        return size

    async def delete(self, status_url: str) -> None:
        """Tell the server it may drop the export's files."""
        await self.http.send("DELETE", status_url)
