"""`journey subscriptions ...` and `journey feed replay`: webhook subscriptions from the
command line, as the API manages them (`journey worker` delivers)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from integration.cli.console import console
from integration.cli.output import AsCsv, AsJson, OutputFormat, output_format, print_csv, print_json
from integration.config import Settings
from integration.errors import ConfigError
from integration.store.engine import open_configured_store
from integration.webhooks import subscriptions as service

subscriptions_app = typer.Typer(
    help="Webhook subscriptions: endpoints the feed is delivered to (by `journey worker`).",
    no_args_is_help=True,
)
feed_app = typer.Typer(help="The journey feed.", no_args_is_help=True)

SubscriptionArg = Annotated[str, typer.Argument(help="Subscription id (whk_... or its name)")]
SUBSCRIPTION_COLUMNS = (
    "id", "url", "description", "types", "sources", "people", "concerns", "payload",
    "managed_by", "created_at", "state", "delivered_up_to", "events_behind_at_most",
    "delivered", "dead_letters", "attempts", "next_attempt_at", "failing_since",
    "last_error", "last_delivered_at", "secret_rotating_until", "held_by",
)  # fmt: skip
_LISTS = ("types", "sources", "people", "concerns")
DEAD_LETTER_COLUMNS = ("event", "type", "failing_since", "given_up_at", "attempts", "last_error")


def _settings(ctx: typer.Context) -> Settings:
    # The parent command's context holds the settings (see integration.cli.commands).
    settings: Settings = ctx.find_root().obj
    return settings


@subscriptions_app.command("list")
def list_subscriptions(ctx: typer.Context, as_json: AsJson = False, as_csv: AsCsv = False) -> None:
    """Every subscription with its delivery state."""
    chosen = output_format(as_json, as_csv)
    settings = _settings(ctx)
    items = service.statuses(open_configured_store(settings), settings.webhook_give_up_hours)
    if chosen is OutputFormat.JSON:
        print_json(items)
        return
    if chosen is OutputFormat.CSV:
        print_csv(
            SUBSCRIPTION_COLUMNS,
            ({**item, **{key: ";".join(item[key]) for key in _LISTS}} for item in items),
        )
        return
    if not items:
        console.print("No webhook subscriptions (add one with `journey subscriptions add URL`).")
        return
    table = Table("id", "url", "state", "up to", "behind", "delivered", "dead", "last error")
    for item in items:
        table.add_row(
            item["id"],
            item["url"],
            item["state"],
            item["delivered_up_to"] or "-",
            str(item["events_behind_at_most"]),
            str(item["delivered"]),
            str(item["dead_letters"]),
            item["last_error"] or "",
        )
    console.print(table)


@subscriptions_app.command("add")
def add_subscription(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="Where each event is POSTed")],
    types: Annotated[
        list[str] | None, typer.Option("--type", help="An event type to deliver (repeatable)")
    ] = None,
    sources: Annotated[
        list[str] | None, typer.Option("--source", help="Only events of this source")
    ] = None,
    people: Annotated[
        list[str] | None, typer.Option("--person", help="Only this person's events")
    ] = None,
    concerns: Annotated[
        list[str] | None, typer.Option("--concern", help="Only episode events of this concern")
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Each event with its new form")] = False,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Deliver every event the feed holds, not from now")
    ] = False,
    description: Annotated[str | None, typer.Option(help="What the endpoint is")] = None,
) -> None:
    """Subscribe an endpoint; prints its id and its whsec_ secret (shown only now)."""
    settings = _settings(ctx)
    try:
        spec = service.checked_spec(
            url,
            types or [],
            sources or [],
            people or [],
            concerns or [],
            "full" if full else "thin",
            description,
        )
    except service.InvalidSubscription as exc:
        raise ConfigError(f"subscription {exc}") from None
    created = service.create(
        open_configured_store(settings), spec, "beginning" if from_start else "now"
    )
    console.print(f"subscription {created.subscription.id}", highlight=False)
    console.print(f"secret {created.secret}", highlight=False, soft_wrap=True)
    console.print("Keep the secret: it is shown only now. `journey worker` delivers.")


@subscriptions_app.command("remove")
def remove_subscription(ctx: typer.Context, subscription: SubscriptionArg) -> None:
    """Stop delivering to the endpoint (its dead letters go too)."""
    service.remove(open_configured_store(_settings(ctx)), subscription)
    console.print(f"removed {subscription}", highlight=False)


@subscriptions_app.command("rotate-secret")
def rotate_secret(ctx: typer.Context, subscription: SubscriptionArg) -> None:
    """A new secret; deliveries are signed with the old one too during the overlap."""
    settings = _settings(ctx)
    secret, until = service.rotate(
        open_configured_store(settings), subscription, settings.webhook_secret_overlap_hours
    )
    console.print(f"secret {secret}", highlight=False, soft_wrap=True)
    console.print(f"the previous secret also signs until {until}", highlight=False)


@subscriptions_app.command("dead-letters")
def dead_letters(
    ctx: typer.Context,
    subscription: SubscriptionArg,
    as_json: AsJson = False,
    as_csv: AsCsv = False,
) -> None:
    """Events given up on, oldest first (replay from the first to deliver them again)."""
    chosen = output_format(as_json, as_csv)
    items = service.dead_letters(open_configured_store(_settings(ctx)), subscription)
    if chosen is OutputFormat.JSON:
        print_json(items)
        return
    if chosen is OutputFormat.CSV:
        print_csv(DEAD_LETTER_COLUMNS, items)
        return
    table = Table("event", "type", "failing since", "given up at", "attempts", "last error")
    for item in items:
        table.add_row(
            item["event"],
            item["type"],
            item["failing_since"],
            item["given_up_at"],
            str(item["attempts"]),
            item["last_error"] or "",
        )
    console.print(table if items else f"No dead letters for {subscription}.")


@feed_app.command("replay")
def replay(
    ctx: typer.Context,
    subscription: SubscriptionArg,
    from_event: Annotated[
        str | None,
        typer.Option("--from", help="Event id (evt_N) to deliver again from; default: the oldest"),
    ] = None,
) -> None:
    """Deliver a subscription's events again from an event on (dead letters included)."""
    position = service.replay(open_configured_store(_settings(ctx)), subscription, from_event)
    console.print(
        f"{subscription} delivers again after {f'evt_{position}' if position else 'the start'}",
        highlight=False,
    )
