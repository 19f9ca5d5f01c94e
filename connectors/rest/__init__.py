"""Pulling from FHIR R4 servers over REST: HTTP policy, auth, capabilities, paged search.

Knows nothing of the store or of jobs: it yields pages of resources, and the
caller decides what a checkpoint is and when it is safe to advance it.
"""
