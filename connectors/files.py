"""Read FHIR resources from files: NDJSON, single JSON resources, Bundles, and folders of them.

This module turns bytes on disk into `RawItem`s: a parsed resource, or a
precise problem saying which file and which line or entry could not be read.
It knows nothing of validation, the store or jobs.

Memory stays flat whatever the file size:
- NDJSON (what Bulk Data and Synthea's bulk exporter write) is read line by
  line; a line over the size limit is skipped in chunks, never held whole.
- A `.json` file up to the size limit is read whole with orjson (fast, and a
  syntax error comes with its line and column). A larger one must be a
  Bundle and is streamed entry by entry with ijson.

Problems never come back as exceptions, so that one bad line cannot stop the
good lines after it. Messages name places, never values (no PHI in logs).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import ijson
import orjson
from ijson.common import ObjectBuilder

from connectors.errors import InputPathError

NDJSON_SUFFIXES = (".ndjson", ".jsonl")
JSON_SUFFIXES = (".json",)
DEFAULT_MAX_RESOURCE_BYTES = 16 * 1024 * 1024
# How much of a rejected line is kept with its problem: enough to recognise it.
PROBLEM_HEAD_BYTES = 4096
_SKIP_CHUNK = 1024 * 1024
# Windows tools often start UTF-8 files with a byte-order mark; JSON parsers refuse it.
UTF8_BOM = b"\xef\xbb\xbf"
_UUID_URN = re.compile(r"^urn:uuid:([0-9A-Za-z.\-]{1,64})$")
_RESOURCE_URL = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")

ProgressCallback = Callable[[int], None]


class LineSource(Protocol):
    """What the NDJSON reader needs: a line at a time, at most `limit` bytes of it."""

    def readline(self, limit: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class RawItem:
    """One thing read from a file: a resource, or a problem in its place.

    `location` is where in `origin` it was found ("line 12", "entry 3",
    "line 2, entry 5"). `raw` holds the exact bytes when the resource had a
    line or a file of its own; for Bundle entries it is None and the parsed
    resource is all there is. `fallback_id` is the id implied by a Bundle
    entry's `fullUrl` when the resource itself carries none.

    An NDJSON line read with `parse=False` is an item with only `raw` and
    `parsed` False: whoever takes it parses it (`parse_line`), perhaps in
    another process, and it may turn out to be a problem or a whole Bundle.

    A problem may carry the resource it is about (with `raw` its JSON), when the
    resource is fine but its place is not: a Bundle entry repeating another's.
    """

    origin: str
    location: str
    resource: dict[str, Any] | None = None
    raw: bytes | None = None
    fallback_id: str | None = None
    problem: str | None = None
    parsed: bool = True
    # `raw` is only the first PROBLEM_HEAD_BYTES of what was read (a problem's head).
    raw_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Expand the paths a user gave into the files to read, in a stable order.

    Folders are searched recursively for .ndjson, .jsonl and .json files;
    a file named explicitly is read whatever its suffix says.
    """
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in NDJSON_SUFFIXES + JSON_SUFFIXES
            )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputPathError(str(path), "no such file or folder")
    return files


class FileReader:
    """Reads files into `RawItem`s, reporting bytes consumed to `on_progress`."""

    def __init__(
        self,
        max_resource_bytes: int = DEFAULT_MAX_RESOURCE_BYTES,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.max_resource_bytes = max_resource_bytes
        self._progress = on_progress or (lambda _n: None)

    def read(self, path: Path, parse: bool = True) -> Iterator[RawItem]:
        """`parse=False` leaves an NDJSON file's lines unparsed (see `RawItem`)."""
        origin = str(path)
        try:
            size = path.stat().st_size
            handle = path.open("rb")
        except OSError as exc:
            yield RawItem(origin, "file", problem=f"cannot open file: {exc.strerror}")
            return
        with handle:
            if size == 0:
                yield RawItem(origin, "file", problem="empty file: no resources in it")
                return
            if path.suffix.lower() in NDJSON_SUFFIXES:
                yield from self.read_ndjson(origin, handle, parse)
            elif path.suffix.lower() in JSON_SUFFIXES or path.suffix == "":
                yield from self._read_json(origin, handle, size)
            else:
                self._progress(size)
                yield RawItem(
                    origin,
                    "file",
                    problem="unsupported file type: expected .ndjson, .jsonl or .json",
                )

    # -- NDJSON ---------------------------------------------------------------

    def read_ndjson(self, origin: str, handle: LineSource, parse: bool = True) -> Iterator[RawItem]:
        """NDJSON from anything with `readline(limit)`: a file, or a download being
        streamed (`connectors.streams.QueuedStream`); one reader for both.
        `parse=False` leaves complete lines unparsed (see `RawItem`)."""
        limit = self.max_resource_bytes
        line_no = 0
        seen_content = False
        while True:
            line = handle.readline(limit + 1)
            if not line:
                break
            line_no += 1
            self._progress(len(line))
            if len(line) > limit and not line.endswith(b"\n"):
                skipped = self._skip_rest_of_line(handle)
                seen_content = True
                yield RawItem(
                    origin,
                    f"line {line_no}",
                    raw=line[:PROBLEM_HEAD_BYTES],
                    raw_truncated=True,
                    problem=(
                        f"line is {len(line) + skipped} bytes, over the limit of {limit} bytes "
                        "for one resource (JOURNEY_MAX_RESOURCE_BYTES); skipped"
                    ),
                )
                continue
            body = line.strip()
            if line_no == 1:
                body = body.removeprefix(UTF8_BOM)
            if not body:
                continue
            seen_content = True
            item = RawItem(origin, f"line {line_no}", raw=body, parsed=False)
            complete = line.endswith(b"\n")
            if parse or not complete:
                yield from parse_line(item, complete)
            else:
                yield item
        if not seen_content:
            yield RawItem(origin, "file", problem="empty file: only blank lines, no resources")

    def _skip_rest_of_line(self, handle: LineSource) -> int:
        skipped = 0
        while True:
            chunk = handle.readline(_SKIP_CHUNK)
            skipped += len(chunk)
            self._progress(len(chunk))
            if not chunk or chunk.endswith(b"\n"):
                return skipped

    # -- JSON -----------------------------------------------------------------

    def _read_json(self, origin: str, handle: IO[bytes], size: int) -> Iterator[RawItem]:
        if size <= self.max_resource_bytes:
            data = handle.read().removeprefix(UTF8_BOM)
            self._progress(size)
            if not data.strip():
                yield RawItem(origin, "file", problem="empty file: no resources in it")
                return
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                yield RawItem(
                    origin,
                    f"line {exc.lineno}",
                    raw=data[:PROBLEM_HEAD_BYTES],
                    raw_truncated=len(data) > PROBLEM_HEAD_BYTES,
                    problem=f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                )
                return
            yield from _expand(parsed, origin, "file", raw=data)
            return
        yield from _stream_bundle(origin, handle, self.max_resource_bytes, self._progress)


def parse_line(item: RawItem, complete: bool = True) -> Iterator[RawItem]:
    """The resources (or the problem) in an NDJSON line read unparsed. `complete` is
    False for a last line with no newline: if it does not parse, it was cut short."""
    body = item.raw or b""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        problem = (
            f"malformed JSON at column {exc.colno}: {exc.msg}"
            if complete
            else "truncated line: the file ends in the middle of a resource"
        )
        yield RawItem(
            item.origin,
            item.location,
            raw=body[:PROBLEM_HEAD_BYTES],
            raw_truncated=len(body) > PROBLEM_HEAD_BYTES,
            problem=problem,
        )
        return
    yield from _expand(parsed, item.origin, item.location, raw=body)


def _expand(parsed: Any, origin: str, where: str, raw: bytes | None) -> Iterator[RawItem]:
    """A parsed JSON value becomes resources: a Bundle gives its entries."""
    if not isinstance(parsed, dict):
        kind = type(parsed).__name__
        yield RawItem(origin, where, raw=raw, problem=f"expected a JSON object, found {kind}")
        return
    if "resourceType" not in parsed and "transactionTime" in parsed and "output" in parsed:
        yield RawItem(
            origin,
            where,
            raw=raw[:PROBLEM_HEAD_BYTES] if raw else None,
            raw_truncated=raw is not None and len(raw) > PROBLEM_HEAD_BYTES,
            problem="a Bulk Data export manifest, not a resource; import the NDJSON files it lists",
        )
        return
    if parsed.get("resourceType") != "Bundle":
        yield RawItem(origin, where, resource=parsed, raw=raw)
        return
    entries = parsed.get("entry", [])
    if not isinstance(entries, list):
        yield RawItem(origin, where, problem="Bundle.entry is not a list")
        return
    claims = _Claims(parsed.get("type"), where)
    for index, entry in enumerate(entries):
        yield from _entry_items(entry, origin, claims, index)


def _entry_where(where: str, index: int) -> str:
    prefix = "" if where == "file" else f"{where}, "
    return f"{prefix}entry {index}"


class _Claims:
    """The identities a Bundle's entries claim, so that an entry claiming an earlier
    entry's is refused, naming both, instead of silently becoming a newer version of
    it: the fullUrl (unique within a Bundle, FHIR's bdl-7) and the type and id it
    would be stored under. Different `meta.versionId`s are versions of one resource,
    which bdl-7 allows, as it allows anything in a history Bundle.

    Holds two short keys per entry (a few hundred bytes): what a streamed Bundle's
    memory grows with, where it otherwise holds one batch of entries."""

    def __init__(self, bundle_type: Any, where: str) -> None:
        self.where = where
        self.bundle_type = bundle_type
        # key -> index of the entry claiming it unversioned, or versionId -> index.
        self._seen: dict[str, int | dict[str, int]] = {}

    def place(self, index: int) -> str:
        return _entry_where(self.where, index)

    def clash(
        self, index: int, full_url: Any, resource: dict[str, Any], resource_id: str | None
    ) -> str | None:
        """Why entry `index` may not be read (naming the earlier entry), or None."""
        if self.bundle_type == "history":
            return None
        meta = resource.get("meta")
        version = meta.get("versionId") if isinstance(meta, dict) else None
        version = version if isinstance(version, str) else None
        resource_type = resource.get("resourceType")
        keys: list[str] = []
        if isinstance(full_url, str) and full_url:
            keys.append(f"fullUrl {full_url}")
        if isinstance(resource_type, str) and resource_id:
            keys.append(f"{resource_type}/{resource_id}")
        for key in keys:
            earlier = self._earlier(key, version)
            if earlier is None:
                continue
            what = "fullUrl" if key.startswith("fullUrl ") else f"resource ({key})"
            return (
                f"the same {what} as {self.place(earlier)}, with no other meta.versionId: "
                f"{self.place(earlier)} is read and this entry is not, so that neither "
                "silently becomes a version of the other"
            )
        for key in keys:
            seen = self._seen.get(key)
            if version is None:
                self._seen[key] = index
            elif isinstance(seen, dict):
                seen[version] = index
            else:
                self._seen[key] = {version: index}
        return None

    def _earlier(self, key: str, version: str | None) -> int | None:
        seen = self._seen.get(key)
        if seen is None:
            return None
        if isinstance(seen, int):
            return seen
        if version is None:
            return next(iter(seen.values()))
        return seen.get(version)


def _entry_items(entry: Any, origin: str, claims: _Claims, index: int) -> Iterator[RawItem]:
    where = claims.place(index)
    if not isinstance(entry, dict):
        yield RawItem(origin, where, problem="Bundle entry is not a JSON object")
        return
    resource = entry.get("resource")
    if resource is None:
        request = entry.get("request")
        method = request.get("method") if isinstance(request, dict) else None
        detail = f" (request {method})" if isinstance(method, str) else ""
        yield RawItem(
            origin,
            where,
            problem=f"Bundle entry has no resource{detail}; file import only adds resources",
        )
        return
    if not isinstance(resource, dict):
        yield RawItem(origin, where, problem="Bundle.entry.resource is not a JSON object")
        return
    if resource.get("resourceType") == "Bundle":
        yield from _expand(resource, origin, where, raw=None)
        return
    full_url = entry.get("fullUrl")
    fallback = id_from_full_url(full_url) if isinstance(full_url, str) else None
    own_id = resource.get("id")
    clash = claims.clash(index, full_url, resource, own_id if isinstance(own_id, str) else fallback)
    if clash is not None:
        # The entry goes along, so that what was sent is quarantined with the problem.
        raw = json_bytes(resource)
        yield RawItem(
            origin, where, resource=resource, raw=raw, fallback_id=fallback, problem=clash
        )
        return
    yield RawItem(origin, where, resource=resource, fallback_id=fallback)


def json_bytes(value: Any) -> bytes:
    """`value` as JSON, however deeply it nests: orjson stops at 255 levels, which a
    resource refused for its depth may pass and must still be kept (quarantined) whole.
    Past orjson's limit the nesting is written out without recursion."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        pass
    out: list[bytes] = []
    # Values to write, last first; bytes are punctuation already written out (parsed
    # JSON holds no bytes, so the two cannot be confused).
    todo: list[Any] = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, bytes):
            out.append(item)
        elif isinstance(item, dict):
            parts: list[Any] = [b"{"]
            for index, (key, member) in enumerate(item.items()):
                parts += [b"," if index else b"", orjson.dumps(str(key)) + b":", member]
            parts.append(b"}")
            todo.extend(reversed(parts))
        elif isinstance(item, list):
            parts = [b"["]
            for index, member in enumerate(item):
                parts += [b"," if index else b"", member]
            parts.append(b"]")
            todo.extend(reversed(parts))
        else:
            out.append(orjson.dumps(item))
    return b"".join(out)


def id_from_full_url(full_url: str) -> str | None:
    """The logical id a Bundle entry's fullUrl implies (`urn:uuid:X` -> X)."""
    match = _UUID_URN.match(full_url)
    if match:
        return match.group(1)
    match = _RESOURCE_URL.search(full_url)
    return match.group(2) if match else None


def _stream_bundle(
    origin: str, handle: IO[bytes], limit: int, progress: ProgressCallback
) -> Iterator[RawItem]:
    """Walk a large JSON file with ijson, yielding Bundle entries one at a time.

    Only the current entry is held in memory. Entries met before the
    top-level `resourceType` (rare: nearly every writer puts it first) are
    held back until it is known.
    """
    top = ObjectBuilder()
    entry: ObjectBuilder | None = None
    index = 0
    resource_type: str | None = None
    held: list[tuple[int, Any]] = []
    consumed = 0
    # The Bundle's type decides whether entries may repeat a resource (a history may);
    # writers put it before the entries, and one put after them is taken as not history.
    claims = _Claims(None, "file")

    def advance() -> None:
        nonlocal consumed
        position = handle.tell()
        progress(position - consumed)
        consumed = position

    try:
        for prefix, event, value in ijson.parse(handle, use_float=True):
            if prefix.startswith("entry.item"):
                if prefix == "entry.item" and event == "start_map":
                    entry = ObjectBuilder()
                if entry is None:
                    yield RawItem(
                        origin,
                        _entry_where("file", index),
                        problem="Bundle entry is not a JSON object",
                    )
                    index += 1
                    continue
                entry.event(event, value)
                if prefix == "entry.item" and event == "end_map":
                    if resource_type == "Bundle":
                        yield from _entry_items(entry.value, origin, claims, index)
                        advance()
                    else:
                        held.append((index, entry.value))
                    entry = None
                    index += 1
                continue
            if prefix == "type" and event == "string" and claims.bundle_type is None:
                claims.bundle_type = value
            if prefix == "resourceType" and event == "string":
                resource_type = value
                if resource_type != "Bundle":
                    # Keep the file's head, as for any over-limit input: enough to
                    # tell what it was (its type, its id) without holding it all.
                    handle.seek(0)
                    head = handle.read(PROBLEM_HEAD_BYTES)
                    progress(max(0, handle.seek(0, 2) - consumed))
                    yield RawItem(
                        origin,
                        "file",
                        raw=head,
                        raw_truncated=True,
                        problem=(
                            f"file is over the limit of {limit} bytes for one resource and is "
                            "not a Bundle (JOURNEY_MAX_RESOURCE_BYTES)"
                        ),
                    )
                    return
            top.event(event, value)
    except ijson.JSONError as exc:
        advance()
        # yajl quotes the input around the error: keep only its first line (no PHI).
        reason = str(exc).splitlines()[0] if str(exc) else "invalid JSON"
        yield RawItem(
            origin,
            f"after entry {index - 1}" if index else "file",
            problem=f"malformed JSON near byte {handle.tell()}: {reason}",
        )
        return
    advance()
    if resource_type is None:
        yield RawItem(origin, "file", problem="missing resourceType at the top level")
        return
    for held_index, held_entry in held:
        yield from _entry_items(held_entry, origin, claims, held_index)
