"""Rule packs are checked at load; a broken one names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mappings.errors import RulePackError
from mappings.rulepack import DEFAULT_PACK, load_rule_pack


def broken(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_PACK.read_text()
    assert old in text
    path = tmp_path / "pack.toml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_default_pack_compiles_codes_into_lookups() -> None:
    pack = load_rule_pack()
    index = pack.encounter_index["reasonCode"]
    rules = list(index.lookup("http://hl7.org/fhir/sid/icd-10-cm", "E11.65"))
    assert {r.id for r in rules} == {
        "encounter.reason.known-concern",
        "encounter.reason.chronic-condition",
    }


def test_cpt_category_ii_codes_are_not_in_the_surgery_range() -> None:
    pack = load_rule_pack()
    index = pack.encounter_index["procedure"]
    cpt = "http://www.ama-assn.org/go/cpt"
    assert "encounter.evidence.procedure-performed" in {r.id for r in index.lookup(cpt, "27447")}
    assert not {r.id for r in index.lookup(cpt, "2023F")}


@pytest.mark.parametrize(
    ("old", "new", "key", "reason"),
    [
        (
            'id = "encounter.reason.course-of-treatment"',
            'id = "encounter.evidence.treatment-given"',
            "encounter_rules[1].id",
            "duplicate",
        ),
        (
            'valueset = "treatment_reasons"',
            'valueset = "nope"',
            "encounter_rules[1].valueset",
            "no value set",
        ),
        ('codes = ["actcode|HH"]', 'codes = ["HH"]', "encounter_rules[21].codes", "system|code"),
        (
            'codes = ["actcode|HH"]',
            'codes = ["actcod|HH"]',
            "encounter_rules[21].codes",
            "unknown code system",
        ),
        ('job = "treat"', 'job = "cure"', "encounter_rules.0.job", "Input should be"),
        ("positive_at = 10", 'positive_at = "ten"', "instruments.0.scales.0.positive_at", "number"),
        (
            'instruments = ["gad7"]',
            'instruments = ["gad8"]',
            "concerns[2].instruments",
            "no instrument 'gad8'",
        ),
        ('id = "anxiety"', 'id = "depression"', "concerns[2].id", "duplicate concern id"),
        ('id = "anxiety"', 'id = "Anxiety!"', "concerns.2.id", "pattern"),
        ('valuesets = ["anxiety"]', 'valuesets = ["worry"]', "concerns[2].codes", "no value set"),
        (
            '"icd10cm|Z79.84", "icd10cm|Z79.4",',
            '"icd10cm|Z79.84", "Z79.4",',
            "concerns[3].related",
            "system|code",
        ),
        (
            "acute_close_after_days = 90",
            "acute_close_after_days = 0",
            "episodes.acute_close_after_days",
            "greater than 0",
        ),
    ],
)
def test_broken_pack_names_file_and_key(
    tmp_path: Path, old: str, new: str, key: str, reason: str
) -> None:
    path = broken(tmp_path, old, new)
    with pytest.raises(RulePackError) as caught:
        load_rule_pack(path)
    assert caught.value.file == str(path)
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_pack_with_bad_toml_says_so(tmp_path: Path) -> None:
    path = tmp_path / "pack.toml"
    path.write_text("[pack\n")
    with pytest.raises(RulePackError, match="syntax"):
        load_rule_pack(path)


def test_missing_pack_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(RulePackError, match="cannot read"):
        load_rule_pack(tmp_path / "missing.toml")
