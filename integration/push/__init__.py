"""Providers push resources in: the FHIR R4 write interface under /fhir."""
