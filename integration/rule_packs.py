"""The process's rule pack: loaded once per configured pack file, then shared.

Every path in a process that maps resources (the API's pushes, an API-started
sync, a CLI command, the worker) takes its pack from `rule_pack(settings)`, so
one process never maps with two versions of a pack. A changed pack file is
picked up by a new process (`journey remap` re-derives with it).
"""

from __future__ import annotations

import threading
from pathlib import Path

from integration.config import Settings
from mappings.rulepack import DEFAULT_PACK, RulePack, load_rule_pack

_loaded: dict[Path, RulePack] = {}
# Held while loading, so two threads asking at once (an API's startup and a sync it
# starts) get one object, not one each.
_lock = threading.Lock()


def rule_pack(settings: Settings) -> RulePack:
    """The pack `settings` names (or the bundled one), loaded on the first call in this
    process."""
    path = Path(settings.rule_pack or DEFAULT_PACK).resolve()
    with _lock:
        pack = _loaded.get(path)
        if pack is None:
            pack = _loaded[path] = load_rule_pack(path)
        return pack
