"""The dashboard: server-rendered pages over the store, for the owner who never opens a terminal.

Pages (each a plain GET; no script, charts as inline SVG):

- ``/``: every model, its champion, a health badge with its reason, the loop's last decision;
- ``/models/NAME``: versions with metrics and gate verdicts, the alias history, the champion's
  lineage, links to each card and datasheet;
- ``/models/NAME/versions/V/evaluation`` (and ``.../card``, ``/datasets/FP/datasheet``);
- ``/models/NAME/monitoring``: drift and accuracy over time, alarms in plain words;
- ``/models/NAME/loop``: the loop's decisions with their reasons and numbers.

Promote and roll back are the only changes, each behind a confirmation page that says what will
change, for a signed-in operator (:mod:`amploop.ui.session`: API-key sign-in, a signed cookie,
a CSRF token per form); they call :func:`~amploop.registry.aliases.promote` and
:func:`~amploop.registry.aliases.rollback`, which keep the audit entry with who and why.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from amploop.config import AmploopConfig
from amploop.errors import AmploopError, AuthError, InputTooLarge, PermissionDenied, UsageError
from amploop.ui import pages
from amploop.ui.session import COOKIE, Session, SessionSigner

if TYPE_CHECKING:
    from amploop.registry.store import Store

__all__ = ["create_ui_app"]

MAX_FORM_BYTES = 8192  # a sign-in or an action's form: a key, a reason, a token
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _environment() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(
        lambda name: (resources.files("amploop.ui") / "templates" / name).read_text(encoding="utf-8")
    )
    environment = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters["url"] = lambda text: quote(str(text), safe="")
    return environment


def create_ui_app(store: Store, config: AmploopConfig | None = None, *, secret: bytes | None = None) -> FastAPI:
    """The dashboard as an ASGI app over ``store``; mount it anywhere (``amploop serve`` puts it at /ui)."""
    config = config or AmploopConfig()
    templates = _environment()
    signer = SessionSigner(secret)
    app = FastAPI(title="amploop dashboard", docs_url=None, redoc_url=None, openapi_url=None)

    def session_of(request: Request) -> Session | None:
        return signer.read(request.cookies.get(COOKIE))

    def page(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
        session = session_of(request)
        base = request.scope.get("root_path", "").rstrip("/")
        html = templates.get_template(template).render(
            base=base,
            session=session,
            csrf=signer.csrf(session) if session else "",
            title=config.project.name,
            notice=request.query_params.get("done"),
            **context,
        )
        return HTMLResponse(html, status_code=code, headers=SECURITY_HEADERS)

    @app.exception_handler(AmploopError)
    async def amploop_error(request: Request, exc: AmploopError) -> HTMLResponse:
        return page(request, "message.html.j2", exc.http_status, heading="That did not work", message=exc.message)

    def view(template: str, build: Callable[..., dict[str, Any]]) -> Callable[..., Any]:
        async def handler(request: Request) -> HTMLResponse:
            context = await run_in_threadpool(build, store, config, **request.path_params)
            return page(request, template, **context)

        return handler

    app.add_api_route("/", view("overview.html.j2", pages.overview), methods=["GET"])
    app.add_api_route("/models/{name}", view("model.html.j2", pages.model), methods=["GET"])
    app.add_api_route(
        "/models/{name}/versions/{version:int}/evaluation",
        view("evaluation.html.j2", pages.evaluation),
        methods=["GET"],
    )
    app.add_api_route("/models/{name}/monitoring", view("monitoring.html.j2", pages.monitoring), methods=["GET"])
    app.add_api_route("/models/{name}/loop", view("loop.html.j2", pages.loop), methods=["GET"])

    @app.get("/models/{name}/versions/{version:int}/card")
    async def card(name: str, version: int) -> HTMLResponse:
        from amploop.registry.cards import model_card_text

        text = await run_in_threadpool(model_card_text, store, name, version, config=config, fmt="html")
        return HTMLResponse(text, headers=SECURITY_HEADERS)

    @app.get("/datasets/{fingerprint}/datasheet")
    async def datasheet(fingerprint: str) -> HTMLResponse:
        from amploop.registry.cards import render_datasheet

        record = await run_in_threadpool(store.get_dataset, fingerprint)
        return HTMLResponse(render_datasheet(record, sections=record.datasheet, fmt="html"), headers=SECURITY_HEADERS)

    # -- sign-in ---------------------------------------------------------------------------

    async def form(request: Request) -> dict[str, str]:
        """The posted form fields; a body over MAX_FORM_BYTES is refused before it is read whole."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise InputTooLarge(f"a form of more than {MAX_FORM_BYTES} bytes; send less")
        fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in fields.items()}

    @app.get("/login")
    async def login_page(request: Request) -> HTMLResponse:
        return page(request, "login.html.j2", error=None, next=request.query_params.get("next", ""))

    @app.post("/login")
    async def login(request: Request) -> Response:
        from amploop.serve.auth import authenticate

        fields = await form(request)
        try:
            key = await run_in_threadpool(authenticate, store, fields.get("api_key", "").strip())
        except AuthError as exc:
            return page(request, "login.html.j2", 401, error=exc.message, next=fields.get("next", ""))
        base = request.scope.get("root_path", "").rstrip("/")
        target = fields.get("next", "")
        to = target if target.startswith("/") and not target.startswith("//") else "/"
        response = RedirectResponse(base + to, status_code=303)
        response.set_cookie(
            COOKIE,
            signer.issue(key.id, key.name, key.role),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path=base or "/",
        )
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        base = request.scope.get("root_path", "").rstrip("/")
        response = RedirectResponse(base + "/", status_code=303)
        response.delete_cookie(COOKIE, path=base or "/")
        return response

    # -- actions: confirm, then act --------------------------------------------------------

    def operator(request: Request, fields: dict[str, str] | None) -> Session:
        """The signed-in operator whose form this is; AuthError / PermissionDenied otherwise."""
        from amploop.serve.auth import require_role

        session = session_of(request)
        if session is None:
            raise AuthError("sign in with an operator API key first (the Sign in link, top right)")
        if fields is not None and not signer.check_csrf(session, fields.get("csrf")):
            raise PermissionDenied("this form is stale or did not come from this dashboard; open the page again")
        found = store.api_key_secret(session.key_id)
        if found is None or not found[0].active:
            raise AuthError("the API key of this session was revoked; sign in again")
        require_role(found[0], "operator")
        return session

    @app.get("/models/{name}/promote/{version:int}")
    async def confirm_promote(request: Request, name: str, version: int) -> HTMLResponse:
        await run_in_threadpool(operator, request, None)
        context = await run_in_threadpool(pages.confirm_move, store, name, version)
        return page(request, "confirm.html.j2", action="promote", **context)

    @app.get("/models/{name}/rollback")
    async def confirm_rollback(request: Request, name: str) -> HTMLResponse:
        await run_in_threadpool(operator, request, None)
        context = await run_in_threadpool(pages.confirm_move, store, name, None)
        return page(request, "confirm.html.j2", action="rollback", **context)

    async def act(request: Request, name: str, version: int | None) -> Response:
        from amploop.registry.aliases import promote, rollback

        fields = await form(request)
        session = await run_in_threadpool(operator, request, fields)
        reason = fields.get("reason", "").strip()
        if not reason:
            raise UsageError("say why in the reason field: it is kept in the alias history and the audit log")
        if version is None:
            target = int(fields.get("to", "0") or 0) or None
            move = await run_in_threadpool(rollback, store, name, to=target, reason=reason, actor=session.actor)
        else:
            move = await run_in_threadpool(promote, store, name, version, reason=reason, actor=session.actor)
        base = request.scope.get("root_path", "").rstrip("/")
        done = quote(f"champion moved from v{move.from_version} to v{move.to_version}")
        return RedirectResponse(f"{base}/models/{quote(name, safe='')}?done={done}", status_code=303)

    @app.post("/models/{name}/promote/{version:int}")
    async def do_promote(request: Request, name: str, version: int) -> Response:
        return await act(request, name, version)

    @app.post("/models/{name}/rollback")
    async def do_rollback(request: Request, name: str) -> Response:
        return await act(request, name, None)

    return app
