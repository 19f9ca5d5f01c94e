"""How data arrives: files and NDJSON, FHIR REST search, Bulk Data export.

A connector yields raw resources (with where each came from) and knows nothing
of jobs or of the store. It never imports `integration` or `mappings`; its
errors derive from the project's root in `fhir_journey.errors`.
"""
