"""The clinical review set stays well-formed: every case in expected.toml is a valid R4B
collection Bundle whose first entry is the focal resource, ids are unique across the set,
references resolve inside each bundle, and questionnaire scores agree with the answers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parent / "tools"


@pytest.mark.slow
def test_review_set_is_well_formed() -> None:
    sys.path.insert(0, str(TOOLS))
    try:
        import check

        check.main(TOOLS.parent / "expected.toml")
    finally:
        sys.path.remove(str(TOOLS))
        for name in ("check", "common"):
            sys.modules.pop(name, None)
