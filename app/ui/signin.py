"""Signing in to the dashboard with an API key, and out again; the pages' session dependency.

The key travels once, in the sign-in form's POST body (never in a URL, so never in an access
log); from then on the browser holds only the session cookie (app/ui/sessions.py).
"""
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from app.auth.service import ExpiredKey
from app.db import session_scope
from app.ui import sessions
from app.ui.sessions import COOKIE, Current
from app.ui.templating import templates

router = APIRouter(include_in_schema=False)


class SignInRequired(Exception):
    """A page asked for without a live session: the handler sends the browser to /signin."""

    def __init__(self, path: str):
        self.path = path


def local_path(target: str | None) -> str:
    """``target`` when it is a path on this site, else "/": a sign-in must not forward elsewhere."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


async def page_session(request: Request) -> Current:
    """The signed-in session of a page request, or SignInRequired."""
    token = request.cookies.get(COOKIE)
    found = await run_in_threadpool(_current, token) if token else None
    if found is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(path)
    return found


PageSession = Annotated[Current, Depends(page_session)]


def _current(token: str) -> Current | None:
    with session_scope() as db:
        return sessions.current(db_session=db, token=token)


def redirect_to_sign_in(request: Request, exc: SignInRequired) -> Response:
    return RedirectResponse(f"/signin?next={quote(exc.path, safe='')}", status_code=303)


@router.get("/signin", response_class=HTMLResponse)
def sign_in_page(request: Request, next: str = "/"):
    return templates.TemplateResponse(request, "signin.html", {"next": local_path(next), "error": None})


@router.post("/signin")
def sign_in(request: Request, api_key: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/"):
    expired = False
    try:
        with session_scope() as db:
            made = sessions.sign_in(db_session=db, key=api_key.strip()) if api_key.strip() else None
    except ExpiredKey:
        made, expired = None, True
    if made is None:
        error = "expired API key" if expired else "unknown or revoked API key" if api_key.strip() else \
            "enter your API key"
        return templates.TemplateResponse(request, "signin.html", {"next": local_path(next), "error": error},
                                          status_code=401)
    response = RedirectResponse(local_path(next), status_code=303)
    response.set_cookie(COOKIE, made.token, max_age=made.max_age, path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.post("/signout")
def sign_out(request: Request, csrf_token: Annotated[str, Form()] = ""):
    """A form post (a page's sign-out button): the CSRF token comes as a form field."""
    token = request.cookies.get(COOKIE)
    if token:
        with session_scope() as db:
            found = sessions.current(db_session=db, token=token)
            if found is not None and not sessions.csrf_matches(csrf_token, found.csrf_token):
                return Response("wrong or missing csrf_token", status_code=403)
            sessions.sign_out(db_session=db, token=token)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def install_sign_in(app) -> None:
    app.include_router(router)
    app.add_exception_handler(SignInRequired, redirect_to_sign_in)
