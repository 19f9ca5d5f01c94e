"""What a server says it can do: its CapabilityStatement, read once per sync."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Capabilities:
    fhir_version: str | None
    search_params: dict[str, frozenset[str]] = field(default_factory=dict)
    searchable: frozenset[str] = frozenset()
    # Types whose history the server serves (`history-type`: GET [type]/_history).
    history: frozenset[str] = frozenset()

    def supports_history(self, resource_type: str) -> bool:
        return resource_type in self.history

    def supports_type(self, resource_type: str) -> bool:
        return resource_type in self.searchable

    def supports_param(self, resource_type: str, name: str) -> bool:
        return name in self.search_params.get(resource_type, frozenset())


def parse_capabilities(statement: dict[str, Any]) -> Capabilities:
    """Read the server-mode rest entry of a CapabilityStatement."""
    params: dict[str, frozenset[str]] = {}
    searchable: set[str] = set()
    history: set[str] = set()
    rests = statement.get("rest")
    for rest in rests if isinstance(rests, list) else []:
        if not isinstance(rest, dict) or rest.get("mode", "server") != "server":
            continue
        common = {p.get("name") for p in rest.get("searchParam", []) if isinstance(p, dict)}
        for resource in rest.get("resource", []):
            if not isinstance(resource, dict) or not isinstance(resource.get("type"), str):
                continue
            interactions = {
                i.get("code") for i in resource.get("interaction", []) if isinstance(i, dict)
            }
            if "search-type" in interactions:
                searchable.add(resource["type"])
            if "history-type" in interactions:
                history.add(resource["type"])
            names = {p.get("name") for p in resource.get("searchParam", []) if isinstance(p, dict)}
            params[resource["type"]] = frozenset(n for n in names | common if isinstance(n, str))
    version = statement.get("fhirVersion")
    return Capabilities(
        version if isinstance(version, str) else None,
        params,
        frozenset(searchable),
        frozenset(history),
    )
