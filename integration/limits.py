"""Limits on what one resource may be, shared by the settings that tune them and the
stages that enforce them (so config never imports a stage)."""

DEFAULT_MAX_DEPTH = 64
# fhir.resources' validators run out of Python stack at about 250 levels and orjson
# refuses to write more than 254: the setting stays well below both.
MAX_DEPTH_CEILING = 128
