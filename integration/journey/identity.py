"""Which person is this Patient? Each source Patient belongs to exactly one person:
the Patients joined by `match` verdicts on pairs (`integration.journey.matching`:
a trusted identifier confirmed by the demographics, or a reviewer's link), and by
their source's own merges (a Patient.link replaced-by or replaces: the replaced
Patient's records are the survivor's person's, whatever the demographics say,
while the source declares it; a survivor not yet arrived joins when it does).

Linking a batch judges its Patients' candidate pairs again (a reviewer's decisions
stay), then recomputes the people around them as the connected components of the
match verdicts: a Patient whose identifiers no longer join it to another is
separated again, and two people that one Patient joined come apart when it stops
joining them. Person ids are stable: a component keeps the id most of its
Patients had (on a tie, the id its founding Patient gave it); a split-off part
gets the id derived from its first Patient; a person left with no Patient answers
as the one most of them went to (`merged_into`). The displayed name and birth
date follow the survivorship rule of the pack's [identity] section: the most
trusted source's Patient, then the most recently updated.

A Patient deleted by its source leaves its person (`withdraw_patients`): the
people it was in are recomputed without it (it may have been what held two
parts together), a reviewer's decisions on its pairs are kept for the day it
comes back, and a person left with no Patient at all is retired: listed nowhere,
answered as nobody. A Patient coming back is linked afresh: the person it founded
gets its id back (`people_store.ensure_people` revives it), as a person created.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection

from integration.journey.events import reconcile_people
from integration.journey.matching import Outcome, judge_identifier_match
from integration.journey.probabilistic import Frequency, blocking_keys, score_pair
from integration.store import demographics as demographics_store
from integration.store import episodes as episodes_store
from integration.store import feed
from integration.store import matches as matches_store
from integration.store import people as people_store
from integration.store import replacements as replacements_store
from integration.store.feed import FeedEventType as Event
from integration.store.matches import PatientKey
from integration.store.text import storable
from mappings.demographics import Demographics
from mappings.fhir_values import reference_id
from mappings.rulepack import IdentityRules

PERSON_NAMESPACE = uuid.UUID("8f1d7c1e-3a4b-5c6d-9e8f-0a1b2c3d4e5f")


def person_id_for(source: str, patient_id: str) -> str:
    return str(uuid.uuid5(PERSON_NAMESPACE, f"{source}|{patient_id}"))


def identifiers_of(patient: dict[str, Any]) -> list[tuple[str, str]]:
    """(system, value) pairs a Patient can be matched on: both parts present."""
    found: list[tuple[str, str]] = []
    identifiers = patient.get("identifier")
    if isinstance(identifiers, list):
        for identifier in identifiers:
            if not isinstance(identifier, dict):
                continue
            system, value = identifier.get("system"), identifier.get("value")
            if isinstance(system, str) and isinstance(value, str) and system and value:
                pair = (storable(system[:400]), storable(value[:200]))
                if pair not in found:
                    found.append(pair)
    return found


def display_name(patient: dict[str, Any]) -> str | None:
    names = patient.get("name")
    if not isinstance(names, list) or not names or not isinstance(names[0], dict):
        return None
    name = names[0]
    if isinstance(name.get("text"), str):
        return str(name["text"])
    given = [g for g in name.get("given", []) if isinstance(g, str)]
    family = name.get("family") if isinstance(name.get("family"), str) else None
    parts = [*given, family] if family else given
    return " ".join(parts) or None


def replacements_declared(
    source: str, patient_id: str, patient: dict[str, Any]
) -> list[replacements_store.Replacement]:
    """The source's own merges this Patient declares, as (replaced, survivor): its
    `link` of type replaced-by (it was replaced) or replaces (it replaced another).
    Only a relative reference names a Patient of the same source; a link to another
    server's Patient, to itself or to a RelatedPerson declares nothing."""
    found: list[replacements_store.Replacement] = []
    links = patient.get("link")
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, dict) or link.get("type") not in ("replaced-by", "replaces"):
            continue
        other = link.get("other")
        reference = other.get("reference") if isinstance(other, dict) else None
        if not isinstance(reference, str) or "://" in reference:
            continue
        other_id = reference_id(other, "Patient")
        if not other_id or other_id == patient_id:
            continue
        me, them = (source, patient_id), (source, other_id)
        pair = (me, them) if link["type"] == "replaced-by" else (them, me)
        if pair not in found:
            found.append(pair)
    return found


@dataclass(frozen=True, slots=True)
class SourcePatient:
    source: str
    patient_id: str
    resource: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.patient_id)


class _Groups:
    """Union-find over source Patients."""

    def __init__(self) -> None:
        self.parent: dict[PatientKey, PatientKey] = {}

    def find(self, node: PatientKey) -> PatientKey:
        self.parent.setdefault(node, node)
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:  # path compression
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: PatientKey, b: PatientKey) -> None:
        self.parent[self.find(a)] = self.find(b)

    def components(self) -> list[list[PatientKey]]:
        found: dict[PatientKey, list[PatientKey]] = {}
        for node in list(self.parent):
            found.setdefault(self.find(node), []).append(node)
        return [sorted(members) for members in found.values()]


def link_patients(
    conn: Connection, batch: Sequence[SourcePatient], now: str, rules: IdentityRules
) -> dict[PatientKey, str]:
    """Link each (source, Patient id) of a batch to a person; returns the links. A
    handful of statements per batch and per hop of the people around it, not per
    Patient."""
    if not batch:
        return {}
    pairs_of = {patient.key: identifiers_of(patient.resource) for patient in batch}
    people_store.replace_identifiers(conn, pairs_of)
    replacements_store.replace_declarations(
        conn,
        {p.key: replacements_declared(p.source, p.patient_id, p.resource) for p in batch},
    )
    _judge_candidates(conn, batch, pairs_of, now, rules)
    fresh = [
        people_store.PatientLink(
            patient.source,
            patient.patient_id,
            "",
            storable(display_name(patient.resource)),
            storable(_birth_date(patient.resource)),
            _updated_at(patient.resource, now),
        )
        for patient in batch
    ]
    return regroup(conn, [patient.key for patient in batch], now, rules, fresh)


WITHDRAWN_DELETED = "The Patient was deleted by its source"
# Why a person was removed (person.removed): they had no source Patient left.
REMOVED_DELETED = "every source Patient was deleted by its source"
REMOVED_LEFT_ROSTER = "every source Patient was deleted by its source or left its member roster"


def withdraw_patients(
    conn: Connection,
    keys: Sequence[PatientKey],
    now: str,
    rules: IdentityRules,
    why: str = REMOVED_DELETED,
) -> None:
    """These source Patients were deleted by their source: they leave their people,
    which are recomputed without them, and no pair is found through them any more
    (their automatic verdicts are withdrawn; a reviewer's stay, for their return). A
    person left with none is retired. Already withdrawn, nothing happens again."""
    if not keys:
        return
    people_store.replace_identifiers(conn, {key: [] for key in keys})
    replacements_store.replace_declarations(conn, {key: [] for key in keys})
    demographics_store.forget_demographics(conn, keys)
    touching = matches_store.verdicts_touching(conn, keys)
    automatic = [v for v in touching if v.decided_by == matches_store.AUTOMATIC]
    matches_store.forget_automatic(conn, keys)
    matches_store.record_history(
        conn,
        [
            replace(v, outcome="withdrawn", reason=WITHDRAWN_DELETED, decided_at=now)
            for v in automatic
        ],
    )
    leaving = people_store.links_of(conn, keys)
    if not leaving:
        return
    people_store.unlink(conn, list(leaving))
    members = people_store.members_of(conn, sorted(set(leaving.values())))
    regroup(
        conn,
        sorted(m for ms in members.values() for m in ms),
        now,
        rules,
        leaving=leaving,
        removed_because=why,
    )


def regroup(
    conn: Connection,
    keys: Sequence[PatientKey],
    now: str,
    rules: IdentityRules,
    fresh: Sequence[people_store.PatientLink] = (),
    leaving: dict[PatientKey, str] | None = None,
    removed_because: str = REMOVED_DELETED,
) -> dict[PatientKey, str]:
    """Recompute the people around these Patients from the match verdicts (after a
    batch was judged, or a reviewer decided); `fresh` carries what a batch's Patients
    say now (name, birth date, update time); `leaving`, the Patients just taken out of
    their people (deleted), and the person each was in. Returns the person of each of
    `keys`."""
    nodes, edges, old, replaced = _people_around(conn, keys)
    groups = _Groups()
    for node in nodes:
        groups.find(node)
    for a, b in edges:
        groups.union(a, b)
    chosen, merged = _person_ids(groups.components(), old)
    given = {(link.source, link.patient_id): link for link in fresh}
    stored = people_store.link_details(conn, [n for n in nodes if n not in given])
    links = [
        people_store.PatientLink(
            key[0], key[1], chosen[key], link.display_name, link.birth_date, link.updated_at
        )
        for key, link in [*given.items(), *stored.items()]
    ]
    leaving = leaving or {}
    # Left with no Patient, and none of theirs went to another person: retired.
    retired = sorted(set(leaving.values()) - set(chosen.values()) - merged.keys())
    people_store.ensure_people(conn, sorted(set(chosen.values())), now)
    people_store.mark_merged(conn, merged)
    people_store.retire(conn, retired, now)
    people_store.write_links(conn, links)
    people_store.show_as(conn, _survivors(links, rules, replaced))
    # Events are joined per person: the people this changed join theirs again.
    reconcile_people(conn, {*chosen.values(), *merged})
    episodes_store.mark_stale(conn, {*chosen.values(), *merged, *retired})
    changes = person_changes({**old, **leaving}, chosen, merged, retired, removed_because)
    feed.append(conn, changes, now)
    return {key: chosen[key] for key in keys}


def person_changes(
    old: dict[PatientKey, str],
    chosen: dict[PatientKey, str],
    merged: dict[str, str],
    retired: Sequence[str] = (),
    removed_because: str = REMOVED_DELETED,
) -> list[feed.Change]:
    """What regrouping did to people, as feed events: a person new with new Patients
    (created), new with Patients taken from others (unmerged from them), kept with
    other Patients (changed), left with none (merged into where most went, or removed
    when every one of them was deleted by its source)."""
    before: dict[str, set[PatientKey]] = {}
    for key, person in old.items():
        before.setdefault(person, set()).add(key)
    after: dict[str, set[PatientKey]] = {}
    for key, person in chosen.items():
        after.setdefault(person, set()).add(key)
    changes: list[feed.Change] = []
    for person, members in sorted(after.items()):
        payload: dict[str, Any] = {
            "patients": [{"source": s, "patient_id": p} for s, p in sorted(members)]
        }
        if person not in before:
            taken_from = sorted({old[key] for key in members if key in old})
            kind = Event.PERSON_UNMERGED if taken_from else Event.PERSON_CREATED
            if taken_from:
                payload["from"] = taken_from
            changes.append(feed.Change(kind, person, person, None, payload, _sources(members)))
        elif before[person] != members:
            changes.append(
                feed.Change(
                    Event.PERSON_CHANGED,
                    person,
                    person,
                    None,
                    payload,
                    _sources(members | before[person]),
                )
            )
    for person, survivor in sorted(merged.items()):
        changes.append(
            feed.Change(
                Event.PERSON_MERGED,
                person,
                person,
                None,
                {"into": survivor},
                _sources(before.get(person, set())),
            )
        )
    for person in retired:
        changes.append(
            feed.Change(
                Event.PERSON_REMOVED,
                person,
                person,
                None,
                {"patients": [], "reason": removed_because},
                _sources(before.get(person, set())),
            )
        )
    return changes


def _sources(members: set[PatientKey]) -> list[str]:
    return sorted({source for source, _ in members})


def _judge_candidates(
    conn: Connection,
    batch: Sequence[SourcePatient],
    pairs_of: dict[PatientKey, list[tuple[str, str]]],
    now: str,
    rules: IdentityRules,
) -> None:
    """Judge again every candidate pair of a batch Patient (a reviewer's decisions stay
    as they are): with another Patient carrying the same trusted identifier, by the
    identifier rule; with another source's Patient sharing a blocking key, by
    probabilistic scoring."""
    keys = [patient.key for patient in batch]
    mine = {patient.key: Demographics.of(patient.resource) for patient in batch}
    blocking = {key: blocking_keys(d) for key, d in mine.items()}
    demographics_store.replace_demographics(conn, mine, blocking)
    before = {(v.a, v.b): v for v in matches_store.verdicts_touching(conn, keys)}
    matches_store.forget_automatic(conn, keys)
    decided = {pair for pair, v in before.items() if v.decided_by != matches_store.AUTOMATIC}
    by_identifier = {
        pair: system
        for pair, system in _identifier_candidates(conn, pairs_of, rules).items()
        if pair not in decided
    }
    by_blocking = {
        pair
        for pair in _blocking_candidates(conn, blocking, rules)
        if pair not in decided and pair not in by_identifier
    }
    others = {k for pair in [*by_identifier, *by_blocking] for k in pair} - mine.keys()
    demographics = {**demographics_store.demographics_of(conn, sorted(others)), **mine}
    frequency, population = name_frequency(conn, demographics.values())
    verdicts = []
    for (a, b), system in sorted(by_identifier.items()):
        verdict = judge_identifier_match(
            demographics.get(a, _UNKNOWN),
            demographics.get(b, _UNKNOWN),
            _system_name(system),
            rules,
        )
        verdicts.append(
            matches_store.PairVerdict(
                a,
                b,
                verdict.outcome,
                verdict.rule,
                verdict.reason,
                verdict.fields,
                matches_store.AUTOMATIC,
                now,
            )
        )
    for a, b in sorted(by_blocking):
        scored = score_pair(
            demographics.get(a, _UNKNOWN),
            demographics.get(b, _UNKNOWN),
            rules,
            frequency,
            population,
        )
        if scored.outcome is not None:
            verdicts.append(
                matches_store.PairVerdict(
                    a,
                    b,
                    scored.outcome,
                    PROBABILISTIC,
                    scored.reason,
                    scored.fields,
                    matches_store.AUTOMATIC,
                    now,
                    round(scored.score, 2),
                )
            )
    matches_store.write_verdicts(conn, verdicts)
    # The history keeps what changed: new or different verdicts, and withdrawn ones.
    changed = [
        v for v in verdicts if (v.a, v.b) not in before or before[(v.a, v.b)].outcome != v.outcome
    ]
    now_judged = {(v.a, v.b) for v in verdicts}
    changed += [
        replace(v, outcome="withdrawn", reason="No longer a candidate pair", decided_at=now)
        for pair, v in before.items()
        if v.decided_by == matches_store.AUTOMATIC and pair not in now_judged
    ]
    matches_store.record_history(conn, changed)


def _identifier_candidates(
    conn: Connection, pairs_of: dict[PatientKey, list[tuple[str, str]]], rules: IdentityRules
) -> dict[tuple[PatientKey, PatientKey], str]:
    """Pairs sharing a trusted identifier each side may assert -> its system."""
    linkable = {
        key: [pair for pair in pairs if rules.links_across_sources(key[0], *pair)]
        for key, pairs in pairs_of.items()
    }
    holding = trusted_holders(conn, [p for ps in linkable.values() for p in ps], rules)
    found: dict[tuple[PatientKey, PatientKey], str] = {}
    for key, pairs in linkable.items():
        for pair in pairs:
            for other in holding.get(pair, ()):
                if other != key:
                    found.setdefault(matches_store.ordered(key, other), pair[0])
    return found


def trusted_holders(
    conn: Connection, identifiers: Iterable[tuple[str, str]], rules: IdentityRules
) -> dict[tuple[str, str], list[PatientKey]]:
    """(system, value) -> the Patients whose source may assert it and who carry it,
    for values that name one person: a value held by more than `max_block` Patients
    names none (a family's or a placeholder nobody listed)."""
    holding = matches_store.holders(conn, sorted(set(identifiers)))
    return {
        (system, value): [k for k in holders if rules.links_across_sources(k[0], system, value)]
        for (system, value), holders in holding.items()
        if len(holders) <= rules.max_block
    }


def _blocking_candidates(
    conn: Connection, blocking: dict[PatientKey, list[str]], rules: IdentityRules
) -> set[tuple[PatientKey, PatientKey]]:
    """Pairs of Patients of different sources sharing a blocking key: a few index
    lookups per batch, not a scan."""
    holding = demographics_store.holders_of_keys(
        conn, [k for ks in blocking.values() for k in ks], rules.max_block
    )
    found: set[tuple[PatientKey, PatientKey]] = set()
    for key, keys in blocking.items():
        for blocking_key in keys:
            for other in holding.get(blocking_key, ()):
                if other[0] != key[0]:
                    found.add(matches_store.ordered(key, other))
    return found


def name_frequency(conn: Connection, demographics: Iterable[Demographics]) -> tuple[Frequency, int]:
    """Frequency of a folded family or given name among the store's Patients, once the
    store holds enough of them to say (else the pack's u); and how many there are."""
    people = list(demographics)
    counts = {
        "family": demographics_store.name_counts_of(conn, "family", [d.family for d in people]),
        "given": demographics_store.name_counts_of(conn, "given", [d.given for d in people]),
    }
    total = demographics_store.patients_known(conn)

    def frequency(field: str, value: str) -> float | None:
        if total < MIN_PATIENTS_FOR_FREQUENCIES:
            return None
        return max(counts[field].get(value, 1), 1) / total

    return frequency, total


def _people_around(
    conn: Connection, keys: Sequence[PatientKey]
) -> tuple[
    set[PatientKey], set[tuple[PatientKey, PatientKey]], dict[PatientKey, str], set[PatientKey]
]:
    """The Patients whose person may change: the batch, those linked to it by match
    verdicts or by their source's own merges, and the other Patients of all their
    people, hop by hop; with the verdicts and merges among them (as edges), the person
    each was linked to before, and those replaced by another (by their source)."""
    nodes: set[PatientKey] = set()
    edges: set[tuple[PatientKey, PatientKey]] = set()
    old: dict[PatientKey, str] = {}
    gone: set[PatientKey] = set()
    replaced: set[PatientKey] = set()
    frontier = set(keys)
    while frontier:
        linked = people_store.links_of(conn, sorted(frontier))
        # Reached by a reviewer's verdict or a merge alone, not linked, not asked about:
        # a Patient deleted by its source (the verdict waits for its return), or a
        # survivor not arrived yet. It is no one's.
        gone |= {k for k in frontier if k not in linked and k not in keys}
        frontier -= gone
        nodes |= frontier
        old.update(linked)
        members = people_store.members_of(conn, sorted(set(linked.values())))
        reached = {m for ms in members.values() for m in ms}
        for verdict in matches_store.verdicts_touching(conn, sorted(frontier)):
            if verdict.outcome == Outcome.MATCH:
                edges.add((verdict.a, verdict.b))
                reached |= {verdict.a, verdict.b}
        # A source's own merge joins its two Patients whatever their demographics say.
        for before, survivor in replacements_store.replacements_touching(conn, sorted(frontier)):
            edges.add((before, survivor))
            replaced.add(before)
            reached |= {before, survivor}
        frontier = reached - nodes - gone
    kept = {(a, b) for a, b in edges if a not in gone and b not in gone}
    return nodes, kept, old, {k for k in replaced if k in nodes}


def _person_ids(
    components: list[list[PatientKey]], old: dict[PatientKey, str]
) -> tuple[dict[PatientKey, str], dict[str, str]]:
    """The person id of each Patient, and the people left with none -> where most of
    their Patients went."""
    chosen: dict[PatientKey, str] = {}
    taken: set[str] = set()
    # Larger people choose first: a split keeps the id where most Patients stay.
    for members in sorted(components, key=lambda m: (-len(m), m[0])):
        held = Counter(old[m] for m in members if m in old)
        founders = {person_id_for(*m) for m in members}
        ranked = sorted(held, key=lambda pid: (-held[pid], pid not in founders, pid))
        person = next((pid for pid in ranked if pid not in taken), None)
        if person is None:
            person = _fresh_id(members, taken)
        taken.add(person)
        chosen.update(dict.fromkeys(members, person))
    went: dict[str, Counter[str]] = {}
    for key, before in old.items():
        went.setdefault(before, Counter())[chosen[key]] += 1
    merged = {
        before: counts.most_common(1)[0][0]
        for before, counts in went.items()
        if before not in taken
    }
    return chosen, merged


def _fresh_id(members: list[PatientKey], taken: set[str]) -> str:
    """An id for a part that keeps none of the old ones: its first Patient's, or, when
    that one stays with the part it founded, one derived from it."""
    for attempt in range(len(members) + len(taken) + 1):
        for source, patient_id in members:
            suffix = f"#{attempt}" if attempt else ""
            candidate = person_id_for(source, patient_id + suffix)
            if candidate not in taken:
                return candidate
    raise AssertionError("unreachable: each attempt gives new ids")


def _survivors(
    links: Sequence[people_store.PatientLink],
    rules: IdentityRules,
    replaced: AbstractSet[PatientKey] = frozenset(),
) -> dict[str, tuple[str | None, str | None]]:
    """Each person's displayed name and birth date: from the most trusted source's
    Patient that has one, then the most recently updated; a Patient its source replaced
    by another comes last (what it says is what the source corrected)."""
    by_person: dict[str, list[people_store.PatientLink]] = {}
    for link in links:
        by_person.setdefault(link.person_id, []).append(link)
    shown: dict[str, tuple[str | None, str | None]] = {}
    for person, members in by_person.items():
        ordered = sorted(members, key=lambda link: link.updated_at or "", reverse=True)
        ordered.sort(
            key=lambda link: (
                (link.source, link.patient_id) in replaced,
                rules.trust_rank(link.source),
            )
        )
        name = next((link.display_name for link in ordered if link.display_name), None)
        birth = next((link.birth_date for link in ordered if link.birth_date), None)
        shown[person] = (name, birth)
    return shown


_UNKNOWN = Demographics("", "", "", "")
PROBABILISTIC = "probabilistic"
# Below this many Patients, name frequencies say little: the pack's u is used.
MIN_PATIENTS_FOR_FREQUENCIES = 1000


def _system_name(system: str) -> str:
    """How a reason names an identifier system: its last path segment ("us-ssn")."""
    return system.rstrip("/").rsplit("/", 1)[-1] or system


def _updated_at(patient: dict[str, Any], now: str) -> str:
    meta = patient.get("meta")
    updated = meta.get("lastUpdated") if isinstance(meta, dict) else None
    return updated if isinstance(updated, str) else now


def _birth_date(patient: dict[str, Any]) -> str | None:
    birth_date = patient.get("birthDate")
    return birth_date[:10] if isinstance(birth_date, str) else None
