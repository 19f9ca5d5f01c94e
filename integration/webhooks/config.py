"""`[[subscriptions]]` tables of the config file: webhook subscriptions the operator
manages as configuration. Each is kept in the store under its name (created on first
start, its settings updated on each later one; its position in the feed stays). The
secret is read from an environment variable or a file, never the config file itself.
This module never imports `integration.config`: `Settings` imports it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from integration.source_names import SOURCE_NAME_PATTERN


class SubscriptionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=SOURCE_NAME_PATTERN)
    url: str = Field(min_length=1, description="where each event is POSTed")
    types: list[str] = Field(default_factory=list, description="event types; none: all")
    sources: list[str] = Field(
        default_factory=list,
        description="only events concerning these sources",
    )
    people: list[str] = Field(default_factory=list, description="only these people's events")
    concerns: list[str] = Field(
        default_factory=list, description="only episode events of these concerns"
    )
    payload: Literal["thin", "full"] = "thin"
    start: Literal["now", "beginning"] = Field(
        default="now", description="on first start: deliver events from now, or all retained"
    )
    description: str | None = None
    secret_env: str | None = Field(default=None, description="variable holding the whsec_ secret")
    secret_file: str | None = Field(default=None, description="file holding the whsec_ secret")
