"""Mapping engine: FHIR resources in, job records out (diagnose, treat, keep_well).

Pure functions over parsed JSON: no I/O, no clock, no randomness. A rule pack
(declarative TOML under `packs/`) is compiled once into lookups from
(code system, code) to rule, so mapping one resource costs a few dict lookups.
Never imports `integration` or `connectors`; its errors derive from the
project's root in `fhir_journey.errors`.
"""

from mappings.native import NativeBuild, choose

# Chosen before any mapping module is imported: see `mappings.native`.
__path__, NATIVE_BUILD = choose(__path__)

__all__ = ["NATIVE_BUILD", "NativeBuild"]
