"""The rule pack is a property of the store: every process maps with the pack the store
names, so one journey never mixes two packs.

`journey remap --pack FILE` checks the file, records it in the store (its text too,
so processes on other machines read the same rules) and re-derives everything;
`journey remap --pack bundled` returns to the pack shipped with this version. A
store that names no pack yet uses the bundled one and records it on first use.

Processes load the pack once per version and share it (`store_pack`). A long-running
process notices a pack set by another one at its next journey update
(`pack_for_update`), so an API that stays up through a remap maps its next push
with the new pack. When a new version ships a changed bundled pack, a store on the
bundled pack records the new label and flags every resource for derivation: the
journey moves to the new pack as a whole.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

from sqlalchemy import Connection, Engine

from integration.clock import utc_now
from integration.store.derivation import flag_all_for_derivation
from integration.store.rule_pack_state import (
    BUNDLED,
    StoredPack,
    read_stored_pack,
    write_stored_pack,
)
from mappings.rulepack import DEFAULT_PACK, RulePack, load_rule_pack, parse_rule_pack

log = logging.getLogger(__name__)

_loaded: dict[str, RulePack] = {}
# Held while loading, so two threads asking at once get one object, not one each.
_lock = threading.Lock()


def store_pack(engine: Engine) -> RulePack:
    """The pack the store names, loaded once per process and version."""
    with engine.begin() as conn:
        return _resolve(conn)


def pack_for_update(engine: Engine, held: RulePack) -> RulePack:
    """The pack a journey update must use: `held` unless the store names another."""
    with engine.begin() as conn:
        stored = read_stored_pack(conn)
        if stored is not None and stored.label == held.label:
            return held
        pack = _resolve(conn)
    if pack is not held:
        log.info("rule pack is now %s (set in the store)", pack.label)
    return pack


def set_store_pack(engine: Engine, path: Path | None) -> tuple[RulePack, int]:
    """Check the pack at `path` (None: the bundled one), make it the store's pack and flag
    every resource for derivation. Returns the pack and how many resources were flagged.
    Raises `RulePackError` naming the file and key when the pack is broken."""
    if path is None:
        pack = _bundled()
        stored = StoredPack(pack.label, BUNDLED, None, utc_now())
    else:
        content = path.read_text(encoding="utf-8")
        pack = _cached(content, str(path))
        stored = StoredPack(pack.label, str(path), content, utc_now())
    with engine.begin() as conn:
        write_stored_pack(conn, stored)
        flagged = flag_all_for_derivation(conn)
    return pack, flagged


def _resolve(conn: Connection) -> RulePack:
    stored = read_stored_pack(conn)
    if stored is not None and stored.content is not None:
        return _cached(stored.content, f"the store's rule pack ({stored.origin})")
    pack = _bundled()
    if stored is None or stored.label != pack.label:
        # A new store, or a new version shipped a changed bundled pack: record it and
        # derive everything again, so the journey never mixes the two.
        write_stored_pack(conn, StoredPack(pack.label, BUNDLED, None, utc_now()))
        if stored is not None:
            flagged = flag_all_for_derivation(conn)
            log.warning(
                "bundled rule pack changed from %s to %s: %d resources flagged for derivation",
                stored.label,
                pack.label,
                flagged,
            )
    return pack


def _bundled() -> RulePack:
    with _lock:
        pack = _loaded.get(BUNDLED)
        if pack is None:
            pack = _loaded[BUNDLED] = load_rule_pack(DEFAULT_PACK)
        return pack


def _cached(content: str, origin: str) -> RulePack:
    key = hashlib.sha256(content.encode()).hexdigest()
    with _lock:
        pack = _loaded.get(key)
        if pack is None:
            pack = _loaded[key] = parse_rule_pack(content, origin)
        return pack
