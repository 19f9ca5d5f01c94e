"""A latency-bound FHIR peer for the pull benchmark: answers searches after a fixed delay
and spends almost no CPU doing it.

A co-located real server (sekmet-fhir) spends most of a pull's wall time on its own
CPU, so against it the benchmark measures the server more than the client. This peer
is the other end of that scale: a network-bound server. Every resource is encoded
once at start-up; a page is a bisect over the resources' `meta.lastUpdated` and a
join of pre-encoded entries, sent after an `asyncio.sleep` (the injected latency),
so waiting costs nothing and thousands of requests cost well under a second of CPU.

It serves what `journey sync` uses and no more, over plain HTTP/1.1 with keep-alive:
- `GET /fhir/metadata`: a CapabilityStatement declaring `search-type` with
  `_lastUpdated` for Patient and Encounter, and no history (so a sync searches);
- `GET /fhir/{Patient|Encounter}` with `_count`, `_sort=_lastUpdated` or
  `-_lastUpdated` (default: oldest first), repeated `_lastUpdated=` with the
  prefixes ge, gt, le, lt (and eq or none: the instant itself), `_offset` (what its
  next links use); `total` on every page, `Bundle.meta.lastUpdated` the server's time.

Resources are valid R4 with the shapes `sekmet seed` makes: Patients with an MRN,
name, telecom, address and marital status, and an inpatient Encounter for every
other Patient; their `meta.lastUpdated` spread over 30 days ending
3 hours before start-up.

    python bench/latency_peer.py --patients 3000 --latency-ms 50 --port 8099
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import random
import signal
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

TYPES = ("Patient", "Encounter")
MAX_COUNT = 1000
GIVEN = ("Ann", "Ben", "Chloe", "David", "Eva", "Farid", "Grace", "Hiro", "Ines", "Jonas")
FAMILY = ("Okafor", "Smith", "Novak", "Garcia", "Lindqvist", "Tanaka", "Moreau", "Kowalski")
CITIES = ("Springfield", "Riverside", "Fairview", "Madison", "Georgetown")


@dataclass(frozen=True, slots=True)
class Held:
    """One type's resources, oldest first, each already encoded as a Bundle entry."""

    moments: list[datetime]
    entries: list[bytes]


def patient(rng: random.Random, number: int, updated: str) -> dict[str, object]:
    gender = rng.choice(("male", "female"))
    given, family = rng.choice(GIVEN), rng.choice(FAMILY)
    return {
        "resourceType": "Patient",
        "id": f"pat-{number:06d}",
        "meta": {"versionId": "1", "lastUpdated": updated},
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                            "code": "MR",
                            "display": "Medical record number",
                        }
                    ],
                    "text": "MRN",
                },
                "system": "urn:oid:2.16.840.1.113883.3.9999.1",
                "value": f"MRN{10_000_000 + number * 7919 % 89_999_999}",
            }
        ],
        "active": True,
        "name": [
            {"use": "official", "family": family, "given": [given], "text": f"{given} {family}"}
        ],
        "telecom": [
            {"system": "phone", "value": f"+1-555-{rng.randrange(10**7):07d}", "use": "home"},
            {"system": "email", "value": f"{given}.{family}{number}@example.org".lower()},
        ],
        "gender": gender,
        "birthDate": f"{rng.randrange(1935, 2024)}-{rng.randrange(1, 13):02d}-"
        f"{rng.randrange(1, 29):02d}",
        "address": [
            {
                "use": "home",
                "type": "physical",
                "line": [f"{rng.randrange(1, 999)} Main Street"],
                "city": rng.choice(CITIES),
                "postalCode": f"{rng.randrange(10**5):05d}",
                "country": "US",
            }
        ],
        "maritalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                    "code": rng.choice("MSWD"),
                }
            ]
        },
    }


def encounter(number: int, patient_id: str, updated: str) -> dict[str, object]:
    return {
        "resourceType": "Encounter",
        "id": f"enc-{number:06d}",
        "meta": {"versionId": "1", "lastUpdated": updated},
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.9999.2", "value": f"V{number}"}],
        "status": "in-progress",
        "statusHistory": [{"status": "in-progress", "period": {"start": updated}}],
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "IMP",
            "display": "inpatient encounter",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "participant": [{"individual": {"reference": "Practitioner/attending-1"}}],
        "period": {"start": updated},
        "location": [{"location": {"reference": "Location/bed-401-1"}, "status": "active"}],
    }


def build(patients: int, now: datetime, seed: int = 7) -> dict[str, Held]:
    """Every resource, encoded once: the peer's whole data set."""
    rng = random.Random(seed)
    span = timedelta(days=30)
    # Ends well before now: Encounters come up to 2 hours after their Patient, and
    # nothing may be updated in the server's future.
    start = now - span - timedelta(hours=3)
    made: dict[str, list[tuple[datetime, dict[str, object]]]] = {t: [] for t in TYPES}
    for number in range(patients):
        # Spread over the span, with jitter, to the millisecond (as a real server keeps).
        moment = start + span * (number + rng.random()) / max(patients, 1)
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        updated = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        made["Patient"].append((moment, patient(rng, number, updated)))
        if number % 2 == 0:
            later = moment + timedelta(minutes=rng.randrange(1, 120))
            text = later.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            made["Encounter"].append((later, encounter(number // 2, f"pat-{number:06d}", text)))
    held: dict[str, Held] = {}
    for resource_type, items in made.items():
        items.sort(key=lambda item: (item[0], str(item[1]["id"])))
        held[resource_type] = Held(
            [moment for moment, _ in items],
            [
                orjson.dumps(
                    {
                        "fullUrl": f"{resource_type}/{resource['id']}",
                        "resource": resource,
                        "search": {"mode": "match"},
                    }
                )
                for _, resource in items
            ],
        )
    return held


def capability_statement() -> bytes:
    params = [
        {"name": "_lastUpdated", "type": "date"},
        {"name": "_count", "type": "number"},
        {"name": "_sort", "type": "string"},
    ]
    return orjson.dumps(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-01-01",
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "rest": [
                {
                    "mode": "server",
                    "resource": [
                        {
                            "type": resource_type,
                            "interaction": [{"code": "read"}, {"code": "search-type"}],
                            "searchParam": params,
                        }
                        for resource_type in TYPES
                    ],
                }
            ],
        }
    )


class BadRequest(Exception):
    pass


def instant(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadRequest(f"bad _lastUpdated {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Peer:
    def __init__(self, held: dict[str, Held], latency: float) -> None:
        self.held = held
        self.latency = latency
        self.metadata = capability_statement()
        self.requests = 0

    def search(self, base: str, resource_type: str, query: str) -> bytes:
        held = self.held[resource_type]
        pairs = parse_qsl(query, keep_blank_values=True)
        low, high = 0, len(held.moments)
        count, offset, newest_first = 100, 0, False
        for name, value in pairs:
            if name == "_count":
                count = max(0, min(int(value), MAX_COUNT))
            elif name == "_offset":
                offset = max(0, int(value))
            elif name == "_sort":
                if value.lstrip("-") != "_lastUpdated":
                    raise BadRequest(f"cannot sort by {value}")
                newest_first = value.startswith("-")
            elif name == "_lastUpdated":
                prefix, moment = (
                    (value[:2], instant(value[2:]))
                    if value[:2].isalpha()
                    else (
                        "eq",
                        instant(value),
                    )
                )
                left = bisect.bisect_left(held.moments, moment)
                right = bisect.bisect_right(held.moments, moment)
                if prefix == "ge":
                    low = max(low, left)
                elif prefix == "gt":
                    low = max(low, right)
                elif prefix == "lt":
                    high = min(high, left)
                elif prefix == "le":
                    high = min(high, right)
                elif prefix == "eq":
                    low, high = max(low, left), min(high, right)
                else:
                    raise BadRequest(f"_lastUpdated prefix {prefix} not served")
            else:
                raise BadRequest(f"search parameter {name} not served")
        total = max(0, high - low)
        if newest_first:
            stop = max(low, high - offset)
            chosen = held.entries[max(low, stop - count) : stop][::-1]
        else:
            start = min(high, low + offset)
            chosen = held.entries[start : min(high, start + count)]
        links = [{"relation": "self", "url": f"{base}/{resource_type}?{query}"}]
        if offset + count < total and count > 0:
            rest = [(k, v) for k, v in pairs if k != "_offset"] + [("_offset", str(offset + count))]
            links.append({"relation": "next", "url": f"{base}/{resource_type}?{urlencode(rest)}"})
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        head = orjson.dumps(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "meta": {"lastUpdated": now},
                "total": total,
                "link": links,
            }
        )
        return head[:-1] + b',"entry":[' + b",".join(chosen) + b"]}"

    def answer(self, target: str, host: str) -> tuple[int, bytes]:
        """Status and body for `GET target` (path and query) asked of `host`."""
        parts = urlsplit(target)
        path = parts.path.rstrip("/")
        base = f"http://{host}/fhir"
        if path == "/fhir/metadata":
            return 200, self.metadata
        resource_type = path.removeprefix("/fhir/")
        if resource_type not in self.held:
            return 404, outcome("not-found", f"{path} is not served here")
        try:
            return 200, self.search(base, resource_type, parts.query)
        except (BadRequest, ValueError) as exc:
            return 400, outcome("not-supported", str(exc))

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {
                    name.strip().lower(): value.strip()
                    for name, _, value in (line.partition(":") for line in lines[1:] if line)
                }
                self.requests += 1
                if method != "GET":
                    status, body = 405, outcome("not-supported", f"{method} is not served")
                else:
                    status, body = self.answer(target, headers.get("host", "127.0.0.1"))
                if self.latency:
                    await asyncio.sleep(self.latency)
                reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
                writer.write(
                    f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/fhir+json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode("ascii")
                    + body
                )
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        finally:
            writer.close()


def outcome(code: str, text: str) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}],
        }
    )


async def serve(peer: Peer, host: str, port: int) -> None:
    server = await asyncio.start_server(peer.connection, host, port, backlog=256)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"ready on http://{host}:{port}/fhir", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    peer = Peer(build(args.patients, datetime.now(UTC)), args.latency_ms / 1000)
    asyncio.run(serve(peer, args.host, args.port))


if __name__ == "__main__":
    main()
