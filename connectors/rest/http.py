"""The HTTP policy for FHIR servers, defined once: classify, retry, pace.

`FhirHttp.get_json` is the one way connectors talk to a server. One attempt
(`_once`) turns a response into JSON or a `TransientFhirError` /
`FatalFhirError`; the tenacity policy retries only the transient ones, with
exponential backoff and jitter, honouring `Retry-After` (seconds or an HTTP
date, capped), for a bounded number of attempts. A per-source semaphore
limits concurrent requests and a pacer limits requests per second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from connectors.errors import FatalFhirError, TransientFhirError

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Query parameters: a mapping, or pairs when a name repeats (_lastUpdated=ge..&_lastUpdated=lt..).
Params = Mapping[str, str] | Sequence[tuple[str, str]]
FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    """How patient to be with one server. Defaults suit a production EHR."""

    max_attempts: int = 6
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    retry_after_cap: float = 120.0
    concurrency: int = 4
    requests_per_second: float | None = None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date in the future."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def outcome_diagnostics(body: Any) -> str | None:
    """The first diagnostics or details text of an OperationOutcome, if the body is one."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return None
    for issue in body.get("issue", []):
        if isinstance(issue, dict):
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
            if isinstance(text, str) and text:
                return text[:300]
    return None


class _Pacer:
    """At most `rate` request starts per second, shared by all tasks of a source."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.clock = clock
        self.next_start = 0.0
        self.lock = asyncio.Lock()

    async def wait(self, sleep: Callable[[float], Awaitable[None]]) -> None:
        if not self.interval:
            return
        async with self.lock:
            now = self.clock()
            delay = self.next_start - now
            self.next_start = max(now, self.next_start) + self.interval
        if delay > 0:
            await sleep(delay)


class FhirHttp:
    """GETs FHIR JSON from one server under its policy. Pass the httpx client in."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        policy: HttpPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`sleep` and `clock` are the pacing's and retries' time: tests pass fakes."""
        self.client = client
        self.policy = policy or HttpPolicy()
        self.sleep = sleep
        self.retries = 0
        self._semaphore = asyncio.Semaphore(self.policy.concurrency)
        self._pacer = _Pacer(self.policy.requests_per_second, clock)
        self._backoff = wait_exponential_jitter(
            multiplier=self.policy.backoff_initial, max=self.policy.backoff_max
        )

    def _wait(self, state: RetryCallState) -> float:
        delay = float(self._backoff(state))
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientFhirError) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self.policy.retry_after_cap))
        return delay

    def _before_sleep(self, _state: RetryCallState) -> None:
        # Called only when a retry will really happen (not after the last attempt).
        self.retries += 1

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception_type(TransientFhirError),
            stop=stop_after_attempt(self.policy.max_attempts),
            wait=self._wait,
            before_sleep=self._before_sleep,
            sleep=self.sleep,
            reraise=True,
        )

    async def get_json(self, url: str, params: Params | None = None) -> dict[str, Any]:
        async for attempt in self._retrying():
            with attempt:
                response = await self._once("GET", url, params, {"Accept": FHIR_JSON})
                return _json_object(response)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def send(
        self,
        method: str,
        url: str,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Any request under the policy; a 2xx response comes back whole (status, headers)."""
        async for attempt in self._retrying():
            with attempt:
                return await self._once(
                    method, url, params, {"Accept": FHIR_JSON, **(headers or {})}
                )
        raise AssertionError("unreachable: tenacity reraises the last error")

    @asynccontextmanager
    async def stream(
        self, url: str, headers: Mapping[str, str] | None = None, authenticated: bool = True
    ) -> AsyncIterator[httpx.Response]:
        """GET a large body as a stream, holding one of the source's request slots.
        Failures before the first byte are retried under the policy; a failure
        mid-body is the caller's to handle (restart the file)."""
        async with self._semaphore:
            response: httpx.Response | None = None
            async for attempt in self._retrying():
                with attempt:
                    response = await self._open_stream(url, headers, authenticated)
            assert response is not None
            try:
                yield response
            finally:
                await response.aclose()

    async def _open_stream(
        self, url: str, headers: Mapping[str, str] | None, authenticated: bool
    ) -> httpx.Response:
        await self._pacer.wait(self.sleep)
        try:
            request = self.client.build_request("GET", url, headers=headers)
            response = await self.client.send(
                request, stream=True, auth=httpx.USE_CLIENT_DEFAULT if authenticated else None
            )
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise TransientFhirError(url, None, f"{type(exc).__name__}") from exc
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            _raise_for_status(response)
        return response

    async def _once(
        self,
        method: str,
        url: str,
        params: Params | None,
        headers: Mapping[str, str],
    ) -> httpx.Response:
        await self._pacer.wait(self.sleep)
        query: httpx.QueryParams | None = None
        if params is not None:
            query = httpx.QueryParams(
                dict(params) if isinstance(params, Mapping) else [(k, v) for k, v in params]
            )
        async with self._semaphore:
            try:
                response = await self.client.request(
                    method, url, params=query, headers=dict(headers)
                )
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                raise TransientFhirError(url, None, f"{type(exc).__name__}") from exc
        _raise_for_status(response)
        return response


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    shown = str(response.request.url)
    detail = _error_detail(response)
    if response.status_code in RETRYABLE_STATUSES:
        raise TransientFhirError(
            shown,
            response.status_code,
            detail,
            retry_after_seconds(response.headers.get("Retry-After")),
        )
    raise FatalFhirError(shown, response.status_code, detail)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    shown = str(response.request.url)
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        kind = response.headers.get("content-type", "no content type")
        raise FatalFhirError(shown, response.status_code, f"response is not JSON ({kind})") from exc
    if not isinstance(body, dict):
        raise FatalFhirError(shown, response.status_code, "response is not a JSON object")
    return body


def _error_detail(response: httpx.Response) -> str:
    try:
        diagnostics = outcome_diagnostics(orjson.loads(response.content))
    except orjson.JSONDecodeError:
        diagnostics = None
    return diagnostics or response.reason_phrase or "error"
