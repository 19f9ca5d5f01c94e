"""Fixtures the integration tests of more than one module share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.webhook_receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback for this test (see `tests.webhook_receiver`)."""
    with Receiver().running() as running:
        yield running
