"""GET /metrics: operational metrics in the Prometheus text format (or OpenMetrics,
when the scraper asks for it), for a client holding journey/metrics.read.

Not /metrics/outcomes (routes/outcomes.py), the cohort measures over patients'
episodes: this holds counts by source, resource type and subscription, and no
patient data, so a scrape is not audited as a read of it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from integration.api.deps import ReadMetrics
from integration.api.openapi import problem

router = APIRouter(tags=["operations"])
EXPOSITION = {
    "schema": {
        "type": "string",
        "description": "Metric families in the exposition format: # HELP and # TYPE lines, "
        "then one sample a line",
    }
}


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "The metrics, in the Prometheus text format; in OpenMetrics "
            "when the Accept header asks for application/openmetrics-text",
            "content": {"text/plain": EXPOSITION, "application/openmetrics-text": EXPOSITION},
        },
        **problem(403, "The client lacks the scope journey/metrics.read"),
    },
)
def metrics(request: Request, _caller: ReadMetrics) -> Response:
    """Resources received, stored and quarantined by source and resource type; sync
    lag and last success per source and resource type; the derivation backlog; feed
    deliveries and failures per subscription (all read from the store, the same in
    every process); request latency by route template (this process only)."""
    registry: CollectorRegistry = request.app.state.metrics
    encode, media_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(registry), media_type=media_type)
