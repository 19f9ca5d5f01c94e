"""One ingest pipeline for every way in, built from settings by one factory.

How much each way in takes at once, and why:

- files (`journey import`, Bulk Data export files): `import_batch_size` (5,000)
  resources per transaction, intake (validation) in `validation_processes`
  worker processes, the journey updated in rounds of `batch_size`: on SQLite
  with validation, after each batch stored while the workers validate the next
  ones (unless resources were already waiting to be mapped), and in any case once
  the files are stored;
- pages (REST search): the pages waiting for the store together (up to
  `batch_size` resources, at least one page) per transaction, with the
  checkpoints they cover; intake in this process; the journey updated in rounds
  of `batch_size` stored resources while pages arrive, and once at the end (on
  PostgreSQL in a derive process of its own, started at the first round:
  journey/derive_process.py);
- push (`/fhir` writes): one request per transaction (at most
  `max_bundle_entries`); intake in this process; the journey updated right
  after the write, for what it wrote only.

Files are bound by throughput: large transactions and worker processes (a second
or so to start) pay off. A page is the unit a checkpoint covers, so it is stored
whole with it; pages that arrive while the store is busy go in together, since a
transaction's fixed cost was most of a small page's. A pool's start would cost
more than it saves: tried on a 4,500-resource pull on this loaded 2-core machine,
workers took 3.8 s to start and the pull took 26 s instead of 9.4 s. A push is
bound by latency: its caller waits.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Engine

from integration.config import Settings
from integration.ingest.pipeline import IngestPipeline
from mappings.rulepack import RulePack


class WayIn(StrEnum):
    FILES = "files"
    PAGES = "pages"
    PUSH = "push"


def ingest_pipeline(
    engine: Engine,
    pack: RulePack,
    settings: Settings,
    source: str,
    way: WayIn,
    validate: bool = True,
) -> IngestPipeline:
    """The pipeline for `source` arriving by `way`; `validate=False` for trusted sources."""
    files = way is WayIn.FILES
    return IngestPipeline(
        engine,
        pack,
        source,
        settings.max_resource_bytes,
        settings.batch_size,
        validate=validate,
        processes=settings.validation_processes if files else 0,
        store_batch_size=settings.import_batch_size if files else settings.batch_size,
        max_depth=settings.max_resource_depth,
        # Files come in batches of thousands, where COPY pays; a page is small.
        bulk_copy=settings.trusted_bulk_copy and files,
    )
