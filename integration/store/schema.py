"""Table definitions the store's queries are written against.

Kept in step with the migrations in `migrations/versions/`: a migration is
the history, this module is the present shape. Times are ISO 8601 UTC text
so that they sort the same on every backend.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

metadata = MetaData()
# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a bigint.
RowId = BigInteger().with_variant(Integer(), "sqlite")

raw_resources = Table(
    "raw_resources",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("raw_key", Text, nullable=False, unique=True),
    Column("source", String(200), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("version_key", String(80), nullable=False),
    Column("last_updated", String(40)),
    Column("received_at", String(40), nullable=False),
    Column("origin", Text),
    Column("location", String(200)),
    Column("content", Text, nullable=False),
    Column("warnings", Text),
    # This version is a deletion (FHIR: a history entry with no content, `{}` here).
    Column("deleted", Boolean, nullable=False, server_default=false()),
)

current_resources = Table(
    "current_resources",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("resource_type", String(64), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Column("raw_id", RowId, nullable=False),
    Column("last_updated", String(40)),
    Column("subject_id", String(64)),
    Column("needs_derive", Boolean, nullable=False),
    # The current version is a deletion: the resource is gone (a later read is 410),
    # and this row is its tombstone, kept so a version no newer arriving late stays
    # history.
    Column("deleted", Boolean, nullable=False, server_default=false()),
    Index("ix_current_subject", "source", "subject_id", "resource_type"),
    Index("ix_current_pending", "needs_derive", "resource_type", "source", "resource_id"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("quarantine_key", String(64), nullable=False, unique=True),
    Column("source", String(200), nullable=False),
    Column("origin", Text),
    Column("location", String(200)),
    Column("resource_type", String(64)),
    Column("resource_id", String(64)),
    Column("fhir_path", Text),
    Column("error", Text, nullable=False),
    Column("content", Text),
    Column("content_truncated", Boolean, nullable=False),
    Column("received_at", String(40), nullable=False),
    # When the entry was closed; `resolution` says how: fixed (the input later went
    # through, or left its file), dismissed or resolved (an operator, with a note).
    Column("resolved_at", String(40)),
    # intake: could not be stored as a resource; mapping: stored, its derivation failed.
    Column("stage", String(16), nullable=False, server_default="intake"),
    Column("resolution", String(16)),
    Column("resolution_note", Text),
    Column("resolved_by", String(200)),
    Column("last_seen_at", String(40)),
    Index("ix_quarantine_resource", "source", "resource_type", "resource_id"),
    Index("ix_quarantine_place", "origin", "location"),
    Index("ix_quarantine_open", "resolved_at", "stage", "source"),
)

people = Table(
    "people",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", String(40), nullable=False),
    Column("merged_into", String(36)),
    # Shown for the person: from the most trusted source's Patient, then the most
    # recently updated (the pack's [identity] source_trust).
    Column("display_name", Text),
    Column("birth_date", String(10)),
    # When the person's last source Patient was deleted by its source: retired people
    # are listed nowhere and answer as nobody (a Patient coming back revives the id).
    Column("retired_at", String(40)),
)

person_links = Table(
    "person_links",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("patient_id", String(64), primary_key=True),
    Column("person_id", String(36), nullable=False),
    Column("display_name", Text),
    Column("birth_date", String(10)),
    # The Patient's meta.lastUpdated, else when it was linked: "most recent" in
    # survivorship.
    Column("updated_at", String(40)),
    Index("ix_person_links_person", "person_id"),
)

# Verdicts on pairs of source Patients: `match` links them into one person,
# `possible` waits for review, `no_match` (a reviewer's) keeps them apart. The pair
# is stored once, (a) before (b) in (source, patient id) order.
patient_matches = Table(
    "patient_matches",
    metadata,
    Column("a_source", String(200), primary_key=True),
    Column("a_patient", String(64), primary_key=True),
    Column("b_source", String(200), primary_key=True),
    Column("b_patient", String(64), primary_key=True),
    Column("outcome", String(20), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    # The probabilistic score (sum of log2(m/u)), where one was computed.
    Column("score", Float),
    # JSON: field -> how the two compared ("same", "differs", "0.93", "missing").
    Column("fields", Text, nullable=False),
    # "automatic", or "user:<name>" for a reviewer's decision (kept on re-matching).
    Column("decided_by", String(200), nullable=False),
    Column("decided_at", String(40), nullable=False),
    Index("ix_patient_matches_b", "b_source", "b_patient"),
    Index("ix_patient_matches_outcome", "outcome"),
)

# What each source Patient says about who it is, folded for comparison
# (`integration.journey.matching.Demographics`), and the blocking keys that find
# its candidate pairs in a few index lookups.
patient_demographics = Table(
    "patient_demographics",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("patient_id", String(64), primary_key=True),
    Column("family", String(200), nullable=False),
    Column("given", String(200), nullable=False),
    Column("birth_date", String(10), nullable=False),
    Column("gender", String(20), nullable=False),
    Column("line", Text, nullable=False),
    Column("postcode", String(20), nullable=False),
    Column("city", String(200), nullable=False),
    Column("phone", String(20), nullable=False),
    Column("email", String(320), nullable=False),
    Index("ix_patient_demographics_family", "family"),
    Index("ix_patient_demographics_given", "given"),
)

patient_blocking_keys = Table(
    "patient_blocking_keys",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("source", String(200), primary_key=True),
    Column("patient_id", String(64), primary_key=True),
    Index("ix_patient_blocking_keys_patient", "source", "patient_id"),
)

# How many Patients carry each folded family and given name: what makes a shared
# rare surname weigh more than a shared common one, read without counting rows.
name_counts = Table(
    "name_counts",
    metadata,
    Column("field", String(10), primary_key=True),
    Column("value", String(200), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# Running counts the store keeps instead of counting rows on every read (how many
# Patients identity matching knows: the prior of a probabilistic match).
store_counters = Table(
    "store_counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# Every decision on a pair as it was made: a reviewer's, and each automatic verdict
# that changed (`withdrawn`: the pair is no longer a candidate). Append-only.
patient_match_history = Table(
    "patient_match_history",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("a_source", String(200), nullable=False),
    Column("a_patient", String(64), nullable=False),
    Column("b_source", String(200), nullable=False),
    Column("b_patient", String(64), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("decided_by", String(200), nullable=False),
    Column("decided_at", String(40), nullable=False),
    Index("ix_patient_match_history_a", "a_source", "a_patient"),
    Index("ix_patient_match_history_b", "b_source", "b_patient"),
)

patient_identifiers = Table(
    "patient_identifiers",
    metadata,
    Column("system", String(400), primary_key=True),
    Column("value", String(200), primary_key=True),
    Column("source", String(200), primary_key=True),
    Column("patient_id", String(64), primary_key=True),
    Index("ix_patient_identifiers_patient", "source", "patient_id"),
)

resource_links = Table(
    "resource_links",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("from_type", String(64), primary_key=True),
    Column("from_id", String(64), primary_key=True),
    Column("to_type", String(64), primary_key=True),
    Column("to_id", String(64), primary_key=True),
    # Covering (from_type, from_id): otherwise SQLite without statistics reads every
    # link of the source through the primary key instead (migration 0022).
    Index("ix_resource_links_target", "source", "to_type", "to_id", "from_type", "from_id"),
)

# The journey feed: every change to people, records and episodes, in commit order
# (`seq`; writers hold the derive lock). `subject` is the record, person or episode
# id; `payload` the changed thing's full form (none for a removal).
feed_events = Table(
    "feed_events",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("type", String(40), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("person_id", String(36)),
    Column("version", String(80)),
    Column("occurred_at", String(40), nullable=False),
    Column("payload", Text),
    # What webhook filters select on: the sources an event concerns, as ",a,b," (a
    # LIKE on ",a," finds one), and the concern of an episode event.
    Column("sources", Text),
    Column("concern", String(120)),
    Index("ix_feed_events_person", "person_id", "seq"),
    Index("ix_feed_events_occurred", "occurred_at"),
)

# Webhook subscriptions: where to deliver which feed events, and how far each
# endpoint has got. Each row is one endpoint's queue, held by one worker at a time
# (the lease), so a failing endpoint only ever holds up itself.
webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("url", Text, nullable=False),
    Column("description", Text),
    # JSON lists; empty means every value.
    Column("types", Text, nullable=False),
    Column("sources", Text, nullable=False),
    Column("people", Text, nullable=False),
    Column("concerns", Text, nullable=False),
    Column("payload", String(8), nullable=False),
    Column("secret", Text, nullable=False),
    # The secret before the last rotation, still signed with until the overlap ends.
    Column("previous_secret", Text),
    Column("previous_secret_until", String(40)),
    Column("managed_by", String(16), nullable=False),
    Column("created_at", String(40), nullable=False),
    # The feed sequence delivered up to (every event after it is still to deliver).
    Column("position", RowId, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", String(40)),
    Column("failing_since", String(40)),
    Column("last_error", Text),
    Column("last_delivered_at", String(40)),
    Column("delivered", BigInteger, nullable=False),
    Column("dead_lettered", BigInteger, nullable=False),
    Column("lease_owner", String(200)),
    Column("lease_until", String(40)),
    # FHIR R4 Subscriptions (Backport IG) delivered by the same queue: kind "fhir"
    # (else "webhook"), the Subscription's status and channel, and per-subscription
    # event numbers (events-since-subscription-start).
    Column("kind", String(16), nullable=False, server_default="webhook"),
    Column("fhir_status", String(16)),
    Column("fhir_content", String(16)),
    Column("fhir_headers", Text),
    Column("heartbeat_seconds", Integer),
    Column("last_sent_at", String(40)),
    Column("events_numbered", BigInteger, nullable=False, server_default="0"),
    # The client that created it (None: the config file or the CLI): its population
    # and the Consents naming it bound what is delivered. Its population when it did
    # (JSON; None: everyone): a limited client no longer listed is sent no one.
    Column("client_id", String(200)),
    Column("client_population", Text),
    # Every failed delivery attempt, ever (`attempts` is the current run of failures).
    Column("failures", BigInteger, nullable=False, server_default="0"),
)

# Each FHIR subscription's event numbers: the n-th event it notified is feed event
# `seq` (what $events reads; a replay notifies an event again under its number).
subscription_event_numbers = Table(
    "subscription_event_numbers",
    metadata,
    Column("subscription_id", String(64), primary_key=True),
    Column("number", BigInteger, primary_key=True),
    Column("seq", RowId, nullable=False),
)

# Events a subscription gave up on after retrying for the configured time; visible
# and replayable.
webhook_dead_letters = Table(
    "webhook_dead_letters",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("subscription_id", String(64), nullable=False),
    Column("seq", RowId, nullable=False),
    Column("event_type", String(40), nullable=False),
    Column("failing_since", String(40), nullable=False),
    Column("given_up_at", String(40), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Index("ix_webhook_dead_letters_subscription", "subscription_id", "id"),
)

# Each person's episodes (records grouped by concern), as mappings.episodes writes
# them, for the cohort measures; a person's own views compute theirs on read.
episodes = Table(
    "episodes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("person_id", String(36), nullable=False),
    Column("concern", String(120), nullable=False),
    Column("start", String(40), nullable=False),
    Column("pack_version", String(80), nullable=False),
    # The episode whole (mappings.episodes.episode_json), and what the cohort
    # measures read of it (mappings.outcomes.cohort_facts).
    Column("body", Text, nullable=False),
    Column("facts", Text, nullable=False),
    Column("computed_at", String(40), nullable=False),
    Index("ix_episodes_person", "person_id"),
    Index("ix_episodes_concern_start", "concern", "start"),
)

# People whose records or Patients changed since their episodes were computed.
episodes_stale = Table(
    "episodes_stale",
    metadata,
    Column("person_id", String(36), primary_key=True),
)

job_records = Table(
    "job_records",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("source", String(200), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("version_key", String(80), nullable=False),
    Column("subject_id", String(64)),
    Column("job", String(20), nullable=False),
    # '' when the resource carries no time: such records sort first.
    Column("occurred_start", String(40), nullable=False),
    Column("occurred_end", String(40)),
    Column("title", Text, nullable=False),
    Column("setting", String(64)),
    Column("concern_codes", Text, nullable=False),
    Column("matched_codes", Text, nullable=False),
    Column("rule_id", String(120), nullable=False),
    Column("pack_version", String(80), nullable=False),
    Column("reason", Text, nullable=False),
    Column("instrument", String(40)),
    Column("score", Integer),
    Column("fulfilment_score", Integer),
    Column("warnings", Text, nullable=False),
    Column("derived_at", String(40), nullable=False),
    # JSON list of flags (self_harm_risk, incomplete, superseded, upcoming).
    Column("flags", Text, nullable=False, server_default="[]"),
    # Kept but out of the journey (entered in error, cancelled, superseded).
    Column("excluded", Boolean, nullable=False, server_default=false()),
    Column("band", String(40)),
    Column("instrument_version", String(80)),
    # JSON list of {scale, value, band}: every scale of an instrument.
    Column("scores", Text, nullable=False, server_default="[]"),
    # One real-world event seen by several sources: the other records restate the one
    # shown (`event_of` names it; NULL: this record is shown), which lists them in
    # `joined` (JSON: [{source, resource_type, resource_id, why}]).
    Column("event_of", String(32)),
    Column("joined", Text, nullable=False, server_default="[]"),
    # A tombstone: the resource was deleted by its source at `deleted_at`; the record
    # is kept (excluded) and says why it left the journey.
    Column("deleted_at", String(40)),
    Column("removed_reason", Text),
    Index("ix_job_records_subject", "source", "subject_id", "occurred_start", "id"),
    Index("ix_job_records_resource", "source", "resource_type", "resource_id"),
)

# The rule pack every process maps with: one row, written by `journey remap --pack`.
rule_pack_state = Table(
    "rule_pack_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("label", String(120), nullable=False),
    # "bundled" (the pack shipped with this version) or the file it was read from.
    Column("origin", Text, nullable=False),
    # The pack's TOML, so every process on every machine reads the same rules; None
    # for the bundled pack.
    Column("content", Text),
    Column("set_at", String(40), nullable=False),
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("resource_type", String(64), primary_key=True),
    # Highest meta.lastUpdated durably stored, in the server's clock (ISO UTC).
    Column("checkpoint", String(40)),
    Column("last_started", String(40)),
    Column("last_finished", String(40)),
    Column("last_error", Text),
    Column("last_counts", Text),
    # When a run last ended without an error (the last run may have failed since).
    Column("last_succeeded", String(40)),
)

# Identifiers of resources pushed to /fhir, kept per current version, so conditional
# creates (If-None-Exist: identifier=system|value) and identifier searches are lookups.
resource_identifiers = Table(
    "resource_identifiers",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("resource_type", String(64), primary_key=True),
    Column("system", String(400), primary_key=True),
    Column("value", String(200), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Index("ix_resource_identifiers_resource", "source", "resource_type", "resource_id"),
)

# Content hash (without id and server metadata) of each pushed resource's current
# version: a create that repeats content already held is answered with that resource.
pushed_content = Table(
    "pushed_content",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("resource_type", String(64), primary_key=True),
    Column("content_hash", String(64), primary_key=True),
    Column("resource_id", String(64), primary_key=True),
    Index("ix_pushed_content_resource", "source", "resource_type", "resource_id"),
)

# The export a bulk source is working through; gone once every file is stored.
bulk_exports = Table(
    "bulk_exports",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("status_url", Text, nullable=False),
    Column("kicked_off_at", String(40), nullable=False),
    # `_since` the export was asked with (the previous export's transactionTime).
    Column("since", String(40)),
    Column("transaction_time", String(40)),
    # JSON list of output file URLs already stored: a resumed sync skips them.
    Column("files_done", Text, nullable=False),
)

# One unit of sync work: a source's resource type (REST) or its "$export" (Bulk
# Data). A `journey worker` holds a lease on the unit while it runs it.
sync_units = Table(
    "sync_units",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("unit", String(64), primary_key=True),
    Column("next_run_at", String(40), nullable=False),
    Column("lease_owner", String(200)),
    Column("lease_until", String(40)),
    # Failed runs in a row (backoff); 0 after a run that succeeds.
    Column("attempts", Integer, nullable=False),
    Column("last_started_at", String(40)),
    Column("last_finished_at", String(40)),
    Column("last_error", Text),
    Index("ix_sync_units_due", "next_run_at"),
)

# Named locks every backend can hold for one transaction: updating the row takes
# PostgreSQL's row lock or SQLite's write lock, until commit.
store_locks = Table(
    "store_locks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("taken_at", String(40)),
)

# The audit trail: every read and write of patient data, who did it and how it went
# (IHE Basic Audit Log Patterns, served as FHIR AuditEvent resources).
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("recorded", String(40), nullable=False),
    # C, R, U, D or E (FHIR AuditEvent.action), and what was done (read, search, ...).
    Column("action", String(1), nullable=False),
    Column("subtype", String(40), nullable=False),
    Column("outcome", String(2), nullable=False),
    Column("client", String(200), nullable=False),
    Column("address", String(64)),
    Column("person_id", String(64)),
    Column("method", String(10)),
    Column("path", Text),
    Column("query", Text),
    Column("status", Integer),
    Column("request_id", String(64)),
    Index("ix_audit_events_person", "person_id", "recorded"),
    Index("ix_audit_events_recorded", "recorded"),
)

# Privacy directives read from FHIR Consent resources (mappings.consent): whose data is
# withheld, from which clients (recipients: a JSON list; NULL for all), and when.
consent_directives = Table(
    "consent_directives",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("consent_id", String(64), primary_key=True),
    Column("patient_id", String(64)),
    Column("withholds", Boolean, nullable=False),
    Column("recipients", Text),
    Column("period_start", String(40)),
    Column("period_end", String(40)),
    Column("updated_at", String(40), nullable=False),
    Index("ix_consent_directives_patient", "source", "patient_id"),
)

# Each member-scoped source's roster as its last sync read it (`[sources.members]`):
# the Patients of a payer's member group, for clients limited to that roster.
roster_members = Table(
    "roster_members",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("patient_id", String(64), primary_key=True),
)

# Signed-in sessions of the web UI (`integration.ui.sessions`): the SHA-256 of the
# session cookie, who signed in (a client's principal as JSON; for an API key also
# the key's SHA-256, checked again on every page so a revoked key ends its sessions),
# the session's CSRF token and when it ends.
# A source's own merge: its Patient `patient_id` was replaced by `replaced_by` (a
# Patient.link of type replaced-by on the old one, or replaces on the survivor),
# as `declared_by` says now. The two are one person while the declaration stands.
patient_replacements = Table(
    "patient_replacements",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("patient_id", String(64), primary_key=True),
    Column("replaced_by", String(64), primary_key=True),
    Column("declared_by", String(64), primary_key=True),
    # Covering patient_id, as ix_resource_links_target covers its lookup (0022).
    Index("ix_patient_replacements_survivor", "source", "replaced_by", "patient_id"),
    Index("ix_patient_replacements_declared", "source", "declared_by"),
)
# Members who left a roster whose source retires leavers: their data stays stored but
# out of the journey until they are on the roster again.
roster_departures = Table(
    "roster_departures",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("patient_id", String(64), primary_key=True),
    Column("left_at", String(40), nullable=False),
)
ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("id_digest", String(64), primary_key=True),
    Column("principal", Text, nullable=False),
    Column("key_digest", String(64)),
    Column("csrf", String(64), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("expires_at", String(40), nullable=False),
    Index("ix_ui_sessions_expires", "expires_at"),
)
