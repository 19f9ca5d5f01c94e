"""The HTTP API: the unified journey view for downstream apps (FastAPI)."""
