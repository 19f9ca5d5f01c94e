"""The web UI's pages, under /ui: sign in with an API key or token, search people, read
a journey (three lanes, episodes, PROM charts, safety flags first), and the
integration console (sources, quarantine, the review queue, cohort measures).

Server-rendered with Jinja2, one stylesheet served here, no script and no CDN: each
page is a plain HTML document, and each change a plain form. Every page reads
through the same conditions as the API (scopes, population, Consents), and is
audited like an API read (the audit trail covers /ui).
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from integration.access.authenticator import Authenticator
from integration.access.oauth import IssuerKeysUnavailable, TokenRejected
from integration.access.scopes import Permission
from integration.access.visibility import readable, visible_person
from integration.api.deps import admit
from integration.clock import utc_now
from integration.config import Settings
from integration.errors import IntegrationError
from integration.journey import review
from integration.journey.episodes import episodes_of_person
from integration.journey.matching import Outcome
from integration.journey.outcomes import OutcomeQuery, outcome_report
from integration.journey.review import PersonMerged, UnknownPatient, UnknownPerson
from integration.journey.rule_packs import store_pack
from integration.store import quarantine as quarantine_store
from integration.store import queries
from integration.store.matches import review_queue
from integration.store.people_search import PeopleSearch, name_words, search_people
from integration.store.schema import people as people_table
from integration.store.sync_state import states_by_source
from integration.ui import views
from integration.ui.sessions import (
    COOKIE,
    LOGIN_CSRF_COOKIE,
    Session,
    csrf_matches,
    session_of,
    sign_in,
    sign_out,
)

HERE = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=HERE / "templates")
# The templates ship with the package: no need to look for changes on every render.
TEMPLATES.env.auto_reload = False
router = APIRouter(prefix="/ui", include_in_schema=False)
MOST_RECORDS = 5000
SEARCH_LIMIT = 50
BIRTH_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")


class SignInFirst(IntegrationError):
    """No live session: the answer is the login page, then back here."""

    def __init__(self, back_to: str) -> None:
        self.back_to = back_to


class Refused(IntegrationError):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


def _engine(request: Request) -> Any:
    return request.app.state.engine


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _signed_in(request: Request, *needs: Permission) -> Session:
    """The signed-in session (else to the login page), holding `needs` (else 403), within
    its rate limit (else 429). Notes the client for the audit trail."""
    authenticator: Authenticator = request.app.state.authenticator
    session = session_of(request, _engine(request), authenticator)
    if session is None:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInFirst(back)
    wait = admit(request, session.principal.label)
    if wait:
        raise Refused(429, f"Too many requests from this client: try again in {wait} s.")
    for permission in needs:
        if not session.principal.may(permission):
            raise Refused(403, f"This client lacks the scope {permission.value}.")
    return session


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status)
    # Pages show patient data: never kept by a browser or proxy cache, never framed.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'"
    )
    return response


def _safe_next(target: str | None) -> str:
    """Only a path of this UI: never another site (an open redirect)."""
    if target and target.startswith("/ui/") and not target.startswith("//"):
        return target
    return "/ui/people"


@router.get("", response_class=RedirectResponse)
@router.get("/", response_class=RedirectResponse)
def home() -> RedirectResponse:
    return RedirectResponse("/ui/people", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None, failed: str | None = None) -> Response:
    token = secrets.token_urlsafe(32)
    response = _page(
        request, "login.html", next=_safe_next(next), csrf=token, failed=failed, session=None
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/ui",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


@router.post("/login")
async def login(
    request: Request,
    credential: Annotated[str, Form(max_length=8192)],
    csrf: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=2000)] = "/ui/people",
) -> Response:
    if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE, ""), csrf):
        raise Refused(400, "The form has expired: open the sign-in page again.")
    address = request.client.host if request.client else "unknown"
    if admit(request, f"ui-login:{address}"):
        raise Refused(429, "Too many sign-in attempts from this address: wait a minute.")
    authenticator: Authenticator = request.app.state.authenticator
    settings = _settings(request)
    try:
        cookie, _ = await sign_in(
            _engine(request), authenticator, credential.strip(), settings.ui_session_hours
        )
    except TokenRejected:
        return RedirectResponse(
            f"/ui/login?failed=1&next={quote(_safe_next(next))}", status_code=303
        )
    except IssuerKeysUnavailable:
        raise Refused(503, "The token issuer cannot be reached: try again shortly.") from None
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE, cookie, httponly=True, samesite="strict", path="/ui",
        secure=request.url.scheme == "https", max_age=int(settings.ui_session_hours * 3600),
    )  # fmt: skip
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui")
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=200)]) -> Response:
    session = _signed_in(request)
    if not csrf_matches(session.csrf, csrf):
        raise Refused(400, "The form has expired: open the page again.")
    sign_out(_engine(request), session)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


@router.get("/people", response_class=HTMLResponse)
def people_page(
    request: Request,
    name: Annotated[str | None, Query(max_length=200)] = None,
    identifier: Annotated[str | None, Query(max_length=400)] = None,
    birth_date: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    """Search by name, identifier (system|value or a value) and birth date; with none,
    the first people in order."""
    session = _signed_in(request, Permission.READ_PEOPLE)
    problems = []
    wanted: tuple[str | None, str] | None = None
    if identifier:
        system, sep, value = identifier.strip().rpartition("|")
        if sep and not system:
            problems.append("An identifier is written system|value, or just the value.")
        elif value:
            wanted = (system or None, value)
    if birth_date and not BIRTH_DATE.fullmatch(birth_date):
        problems.append("A birth date is written YYYY-MM-DD (or YYYY-MM, or YYYY).")
    if name and not name_words(name):
        problems.append("A name to search by needs a letter or a digit.")
    engine = _engine(request)
    found: list[dict[str, Any]] = []
    if not problems:
        search = PeopleSearch(name or None, wanted, birth_date or None)
        with engine.connect() as conn:
            shown = readable(conn, session.principal).where(people_table.c.id)
            found = search_people(conn, search, SEARCH_LIMIT, None, shown)
    return _page(
        request,
        "people.html",
        session=session,
        people=found,
        problems=problems,
        name=name or "",
        identifier=identifier or "",
        birth_date=birth_date or "",
        searched=bool(name or identifier or birth_date),
    )


@router.get("/people/{person_id}", response_class=HTMLResponse)
def person_page(request: Request, person_id: str, excluded: bool = False) -> Response:
    """A person's journey: safety flags first, episodes with their stages and PROM
    charts, then every record by day in three lanes, each with its sources, reason
    and flags."""
    session = _signed_in(request, Permission.READ_PEOPLE)
    engine = _engine(request)
    pack = store_pack(engine)
    with engine.connect() as conn:
        resolved = visible_person(conn, session.principal, person_id)
        if resolved is None:
            raise Refused(404, "No person with that id.")
        request.state.person = resolved  # for the audit trail
        person = queries.get_person(conn, resolved)
        where = queries.JourneyFilter(include_excluded=excluded)
        items = queries.journey(conn, resolved, MOST_RECORDS, None, where)
        episodes = episodes_of_person(conn, resolved, pack, utc_now())
    by_id = {item["id"]: item for item in items}
    charts = {
        episode["id"]: [
            chart
            for outcome in episode["outcomes"]
            if (chart := views.prom_chart(outcome, by_id, pack)) is not None
        ]
        for episode in episodes
    }
    return _page(
        request,
        "person.html",
        session=session,
        person=person,
        safety=views.safety_records(items),
        episodes=episodes,
        charts=charts,
        rows=views.timeline(items),
        lanes=views.LANES,
        flag_text=views.FLAG_TEXT,
        count=len(items),
        cut=len(items) >= MOST_RECORDS,
        excluded=excluded,
    )


@router.get("/console", response_class=HTMLResponse)
def console_page(request: Request) -> Response:
    """For data teams: each part shown to a client holding its scope."""
    session = _signed_in(request)
    principal = session.principal
    engine = _engine(request)
    settings = _settings(request)
    context: dict[str, Any] = {"session": session}
    with engine.connect() as conn:
        if principal.may(Permission.READ_OPERATIONS):
            context["sources"] = _sources(conn, settings)
            context["quarantine"] = quarantine_store.entries(conn, 100)
        if principal.may(Permission.LINK_PEOPLE):
            context["review"] = review_queue(conn, 50)
        shown = readable(conn, principal) if principal.may(Permission.READ_PEOPLE) else None
    if shown is not None and principal.patient is None:
        context["measures"] = outcome_report(
            engine, store_pack(engine), OutcomeQuery(as_of=utc_now()), shown
        )
    if len(context) == 1:
        raise Refused(403, "This client holds none of the scopes the console shows.")
    return _page(request, "console.html", **context)


def _sources(conn: Any, settings: Settings) -> list[dict[str, Any]]:
    """Every source the store has heard of or the config names: per resource type its
    checkpoint, last sync and last error, and how long since the last success."""
    states = states_by_source(conn)
    counts = queries.store_status(conn)["resources_by_source"]
    names = sorted(set(states) | set(counts) | {source.name for source in settings.sources})
    now = utc_now()
    listed = []
    for name in names:
        finished = [s["last_finished"] for s in states.get(name, []) if s["last_finished"]]
        last = max(finished) if finished else None
        listed.append(
            {
                "name": name,
                "resources": counts.get(name, 0),
                "last_success": last,
                "lag": _lag(last, now) if last else None,
                "types": states.get(name, []),
            }
        )
    return listed


def _lag(since: str, now: str) -> str:
    from datetime import datetime

    seconds = (
        datetime.fromisoformat(now.replace("Z", "+00:00"))
        - datetime.fromisoformat(since.replace("Z", "+00:00"))
    ).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{max(seconds, 0):.0f} s"


@router.post("/review")
def decide(
    request: Request,
    csrf: Annotated[str, Form(max_length=200)],
    a_source: Annotated[str, Form(max_length=200)],
    a_patient: Annotated[str, Form(max_length=64)],
    b_source: Annotated[str, Form(max_length=200)],
    b_patient: Annotated[str, Form(max_length=64)],
    decision: Annotated[str, Form(pattern="^(match|no_match)$")],
    reason: Annotated[str, Form(min_length=1, max_length=2000)],
) -> Response:
    """A reviewer's decision from the console's review queue: link or keep apart."""
    session = _signed_in(request, Permission.LINK_PEOPLE)
    if not csrf_matches(session.csrf, csrf):
        raise Refused(400, "The form has expired: open the console again.")
    a, b = (a_source, a_patient), (b_source, b_patient)
    now = utc_now()
    try:
        review.under_derive_lock(
            _engine(request),
            lambda conn, rules: review.decide_pair(
                conn, a, b, Outcome(decision), reason, session.principal.label, now, rules
            ),
        )
    except (UnknownPatient, UnknownPerson, PersonMerged, ValueError) as exc:
        raise Refused(400, str(exc)) from None
    return RedirectResponse("/ui/console#review", status_code=303)


def install_ui(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")

    async def to_login(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInFirst)
        return RedirectResponse(f"/ui/login?next={quote(exc.back_to)}", status_code=303)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return _page(request, "refused.html", exc.status, message=exc.message, session=None)

    app.add_exception_handler(SignInFirst, to_login)
    app.add_exception_handler(Refused, refused)
