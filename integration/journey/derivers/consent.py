"""Consents: privacy directives, no record of their own. Each Consent is read as it now
stands (mappings.consent) and kept per (source, id); readers of the journey ask which
people it withholds from them (integration.access.visibility)."""

from __future__ import annotations

import orjson
from sqlalchemy import Connection

from integration.clock import utc_now
from integration.journey.derivers.base import CurrentResource, JourneyUpdate, ResourceKey
from integration.store import consents as consents_store
from mappings.consent import privacy_directive
from mappings.rulepack import RulePack


def derive(
    conn: Connection, batch: list[CurrentResource], _pack: RulePack, _summary: JourneyUpdate
) -> list[ResourceKey]:
    now = utc_now()
    rows = []
    for consent in batch:
        directive = privacy_directive(consent.content)
        recipients = directive.recipients
        rows.append(
            {
                "source": consent.source,
                "consent_id": consent.resource_id,
                "patient_id": directive.patient_id,
                "withholds": directive.withholds,
                "recipients": None if recipients is None else orjson.dumps(recipients).decode(),
                "period_start": directive.start,
                "period_end": directive.end,
                "updated_at": now,
            }
        )
    consents_store.replace(conn, rows)
    return []
