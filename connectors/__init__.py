"""How data arrives: file and NDJSON import now; FHIR REST and Bulk Data pulls later.

A connector yields raw resources (with where each came from) and knows nothing
of jobs or of the store. It never imports `integration` or `mappings`; its
errors derive from the project's root in `fhir_journey.errors`.
"""
