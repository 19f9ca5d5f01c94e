"""Reading files into resources or precise problems: NDJSON, JSON, Bundles, folders."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from connectors.errors import InputPathError
from connectors.files import FileReader, discover, id_from_full_url
from tests.conftest import FIXTURES, patient, write_ndjson


def read(path: Path, limit: int = 1 << 20) -> list:
    return list(FileReader(limit).read(path))


def test_ndjson_lines_become_resources_with_line_numbers_and_exact_bytes(tmp_path: Path) -> None:
    path = write_ndjson(tmp_path / "p.ndjson", patient("a"), "", patient("b"))
    items = read(path)
    assert [(i.location, i.resource["id"]) for i in items] == [("line 1", "a"), ("line 3", "b")]
    assert items[0].raw == orjson.dumps(patient("a"))


def test_malformed_line_is_a_problem_and_the_next_lines_still_read(tmp_path: Path) -> None:
    path = write_ndjson(
        tmp_path / "p.ndjson", patient("a"), '{"resourceType": "Patient", "id": ', patient("c")
    )
    items = read(path)
    assert [i.ok for i in items] == [True, False, True]
    assert items[1].location == "line 2"
    assert items[1].problem.startswith("malformed JSON at column")


def test_truncated_last_line_is_named_as_truncated(tmp_path: Path) -> None:
    path = tmp_path / "p.ndjson"
    path.write_bytes(orjson.dumps(patient("a")) + b"\n" + orjson.dumps(patient("b"))[:20])
    items = read(path)
    assert items[1].problem == "truncated line: the file ends in the middle of a resource"
    assert items[1].location == "line 2"


def test_last_line_without_newline_is_fine_when_complete(tmp_path: Path) -> None:
    path = tmp_path / "p.ndjson"
    path.write_bytes(orjson.dumps(patient("a")))
    assert read(path)[0].resource["id"] == "a"


def test_oversize_line_is_skipped_without_holding_it_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "p.ndjson"
    big = b'{"resourceType": "Patient", "id": "big", "text": "' + b"x" * 50_000 + b'"}'
    path.write_bytes(
        orjson.dumps(patient("a")) + b"\n" + big + b"\n" + orjson.dumps(patient("c")) + b"\n"
    )
    items = read(path, limit=4096)
    assert [i.ok for i in items] == [True, False, True]
    assert "over the limit of 4096 bytes" in items[1].problem
    assert len(items[1].raw) <= 4096


def test_empty_and_blank_files_are_problems(tmp_path: Path) -> None:
    empty = tmp_path / "e.ndjson"
    empty.write_bytes(b"")
    blank = tmp_path / "b.ndjson"
    blank.write_bytes(b"\n  \n")
    empty_json = tmp_path / "e.json"
    empty_json.write_bytes(b"   ")
    assert read(empty)[0].problem == "empty file: no resources in it"
    assert read(blank)[0].problem == "empty file: only blank lines, no resources"
    assert read(empty_json)[0].problem == "empty file: no resources in it"


def test_single_json_resource_keeps_its_exact_bytes() -> None:
    path = FIXTURES / "patient-ann.json"
    [item] = read(path)
    assert item.resource["id"] == "ann"
    assert item.raw == path.read_bytes()


def test_malformed_json_file_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "resourceType": "Patient",\n  "id": "x" "oops"\n}')
    [item] = read(path)
    assert item.location == "line 3"
    assert "line 3, column" in item.problem
    assert "oops" not in item.problem


def test_transaction_bundle_entries_take_their_id_from_the_urn_uuid_full_url() -> None:
    items = read(FIXTURES / "transaction-bundle-urn-uuid.json")
    assert [(i.location, i.resource["resourceType"], i.fallback_id) for i in items] == [
        ("entry 0", "Patient", "5f1a2b3c-0000-4000-8000-000000000001"),
        ("entry 1", "Encounter", "5f1a2b3c-0000-4000-8000-000000000002"),
    ]
    assert all(i.raw is None for i in items)


def test_searchset_keeps_every_entry_including_the_outcome() -> None:
    items = read(FIXTURES / "searchset-with-outcome.json")
    assert [i.resource["resourceType"] for i in items] == [
        "Patient",
        "Encounter",
        "OperationOutcome",
    ]


def test_bundle_entry_without_resource_is_a_problem(tmp_path: Path) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": "Patient/1"}}],
    }
    path = tmp_path / "b.json"
    path.write_bytes(orjson.dumps(bundle))
    [item] = read(path)
    assert item.problem.startswith("Bundle entry has no resource (request DELETE)")


def test_bundle_inside_ndjson_line_and_nested_bundles_are_expanded(tmp_path: Path) -> None:
    inner = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient("n")}]}
    outer = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": patient("m")}, {"resource": inner}],
    }
    path = write_ndjson(tmp_path / "b.ndjson", outer)
    assert [(i.location, i.resource["id"]) for i in read(path)] == [
        ("line 1, entry 0", "m"),
        ("line 1, entry 1, entry 0", "n"),
    ]


def test_top_level_array_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text("[1, 2]")
    assert read(path)[0].problem == "expected a JSON object, found list"


def test_unsupported_suffix_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n")
    assert "unsupported file type" in read(path)[0].problem


def big_bundle(tmp_path: Path, count: int, resource_type_first: bool = True) -> Path:
    entries = [{"fullUrl": f"urn:uuid:id-{i}", "resource": patient(f"p{i}")} for i in range(count)]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    if not resource_type_first:
        bundle = {"type": "collection", "entry": entries, "resourceType": "Bundle"}
    path = tmp_path / "big.json"
    path.write_bytes(orjson.dumps(bundle))
    return path


def test_bundle_over_the_limit_is_streamed_entry_by_entry(tmp_path: Path) -> None:
    path = big_bundle(tmp_path, 300)
    progress: list[int] = []
    items = list(FileReader(2048, progress.append).read(path))
    assert [i.resource["id"] for i in items] == [f"p{i}" for i in range(300)]
    assert items[299].location == "entry 299"
    assert sum(progress) == path.stat().st_size


def test_streamed_bundle_with_resource_type_last_still_yields_every_entry(tmp_path: Path) -> None:
    path = big_bundle(tmp_path, 50, resource_type_first=False)
    assert len([i for i in read(path, limit=1024) if i.ok]) == 50


def test_streamed_bundle_cut_short_keeps_what_came_before_and_names_the_place(
    tmp_path: Path,
) -> None:
    path = big_bundle(tmp_path, 100)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    items = read(path, limit=1024)
    good = [i for i in items if i.ok]
    assert 40 < len(good) < 60
    assert items[-1].problem.startswith("malformed JSON near byte")
    assert items[-1].location == f"after entry {len(good) - 1}"


def test_single_resource_over_the_limit_is_refused_without_parsing_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    path.write_bytes(orjson.dumps(patient("h", text={"div": "x" * 10_000})))
    [item] = read(path, limit=1024)
    assert "is over the limit of 1024 bytes for one resource and is not a Bundle" in item.problem


def test_discover_walks_folders_in_order_and_refuses_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("b.ndjson", "a.json", "sub/c.jsonl", "notes.txt"):
        (tmp_path / name).write_text("{}")
    assert [p.relative_to(tmp_path).as_posix() for p in discover([tmp_path])] == [
        "a.json",
        "b.ndjson",
        "sub/c.jsonl",
    ]
    with pytest.raises(InputPathError, match="no such file or folder"):
        discover([tmp_path / "missing"])


@pytest.mark.parametrize(
    ("full_url", "expected"),
    [
        ("urn:uuid:abc-1", "abc-1"),
        ("https://x.example/fhir/Patient/123", "123"),
        ("https://x.example/fhir/Patient/123/_history/4", "123"),
        ("urn:oid:1.2.3", None),
    ],
)
def test_id_from_full_url(full_url: str, expected: str | None) -> None:
    assert id_from_full_url(full_url) == expected


def test_a_utf8_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    ndjson = tmp_path / "bom.ndjson"
    ndjson.write_bytes(b"\xef\xbb\xbf" + orjson.dumps(patient("a")) + b"\n")
    single = tmp_path / "bom.json"
    single.write_bytes(b"\xef\xbb\xbf" + orjson.dumps(patient("b")))
    assert read(ndjson)[0].resource["id"] == "a"
    assert read(single)[0].resource["id"] == "b"


def test_a_bulk_export_manifest_is_named_as_such(tmp_path: Path) -> None:
    manifest = {"transactionTime": "2025-01-01T00:00:00Z", "request": "x", "output": []}
    path = tmp_path / "manifest.json"
    path.write_bytes(orjson.dumps(manifest))
    assert read(path)[0].problem.startswith("a Bulk Data export manifest, not a resource")


def clashing_bundle(kind: str = "collection") -> dict[str, object]:
    def entry(full_url: str, resource: dict[str, object]) -> dict[str, object]:
        return {"fullUrl": full_url, "resource": resource}

    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            entry("urn:uuid:a", {"resourceType": "Patient", "gender": "male"}),
            entry("urn:uuid:b", patient("b")),
            entry("urn:uuid:a", {"resourceType": "Patient", "gender": "female"}),
            entry("http://ehr.example/fhir/Patient/b", patient("b", gender="other")),
            entry("urn:uuid:c", patient("c", meta={"versionId": "1"})),
            entry("urn:uuid:c", patient("c", meta={"versionId": "2"})),
            entry("urn:uuid:c", patient("c", meta={"versionId": "2"})),
        ],
    }


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_a_later_bundle_entry_claiming_an_earlier_ones_identity_is_a_problem_naming_both(
    tmp_path: Path, streamed: bool
) -> None:
    path = tmp_path / "clash.json"
    path.write_bytes(orjson.dumps(clashing_bundle()))
    items = read(path, limit=1024 if streamed else 1 << 20)
    assert [i.location for i in items] == [f"entry {n}" for n in range(7)]
    assert [i.ok for i in items] == [True, True, False, False, True, True, False]
    assert "the same fullUrl as entry 0" in items[2].problem
    assert "Patient/b" in items[3].problem
    assert "entry 1" in items[3].problem
    assert "entry 5" in items[6].problem
    # The problem keeps the entry, so the quarantine keeps what was sent.
    assert items[2].resource == {"resourceType": "Patient", "gender": "female"}
    assert orjson.loads(items[2].raw or b"") == items[2].resource


def test_a_history_bundle_may_repeat_a_resource(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.write_bytes(orjson.dumps(clashing_bundle("history")))
    assert all(item.ok for item in read(path))
