"""What any request may carry, checked before a route reads it: body bytes, and a JSON body's form.

One ASGI middleware, so no route can forget it:
- the body's bytes are counted as they arrive, against MAX_UPLOAD_BYTES for a multipart
  upload, the largest part for a resumable upload's part (PUT /v1/uploads/{id}/parts/{n},
  passed on unread: app/uploads/parts.py streams it to disk), and MAX_JSON_BYTES for anything
  else (a declared Content-Length over it is refused before a byte is read);
- a JSON body (or one without a Content-Type, which FastAPI reads as JSON) is held (it is
  bounded now) and checked before any parser sees it: UTF-8, nested at most MAX_JSON_DEPTH
  deep (Python's json recursed 10,000 levels into a RecursionError), and no string holding a
  NUL (PostgreSQL's text and jsonb cannot store one) or a lone surrogate (not a character:
  no database or JSON response can encode it);
- a path holding a NUL names nothing (no id has one): 404, without a database lookup.

Every check is linear in the body; the common case (no escapes of those characters) is a
few passes in C over the bytes.
"""
import json
import re

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import get_settings
from app.errors import ApiError, error_response
from app.uploads.parts import max_part_bytes

BODY_METHODS = {"POST", "PUT", "PATCH"}
MULTIPART_SLACK = 64 * 1024  # the multipart framing and form fields around the file
# A string literal: its quotes and everything escaped inside it (brackets there do not nest).
STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Escapes of a NUL or of a surrogate half: only then is the body parsed to find the string.
SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|d[89a-f][0-9a-f]{2})", re.IGNORECASE)
OPEN, BRACKETS = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"[{]}", np.uint8)
UPLOAD_PART = re.compile(r"/v1/uploads/[^/]+/parts/[^/]+/?")


class BodyTooLarge(ApiError):
    def __init__(self, limit: int, what: str, field: str):
        super().__init__(413, f"{what} is over the limit of {limit:,} bytes", field)


class RequestLimits:
    """The ASGI middleware: refuses what is over a limit with the one error body, else passes it on."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            receive = await _checked(scope, receive)
        except ApiError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _checked(scope: Scope, receive: Receive) -> Receive:
    """``receive`` for the app: the JSON body read and checked, or a multipart one counted."""
    if "\x00" in scope["path"]:
        raise ApiError(404, "no resource has a NUL character (%00) in its path", "path")
    if scope["method"] not in BODY_METHODS:  # no route reads their bodies: left unread, they cost nothing
        return receive
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    settings = get_settings()
    content_type = headers.get("content-type", "").lower()
    part = scope["method"] == "PUT" and UPLOAD_PART.fullmatch(scope["path"]) is not None
    if part:
        limit, what, field = max_part_bytes(settings), "the part", "body"
    elif content_type.startswith("multipart/form-data"):
        limit, what, field = settings.max_upload_bytes + MULTIPART_SLACK, "the upload", "file"
    else:
        limit, what, field = settings.max_json_bytes, "the body", "body"
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit, what, field)
    if part or content_type.startswith("multipart/form-data"):
        return _counting(receive, limit, what, field)
    body = await _read_body(receive, limit, what, field)
    if body and (not content_type or _is_json(content_type)):
        check_json(body, settings.max_json_depth)
    return _replay(body, receive)


def _is_json(content_type: str) -> bool:
    """As FastAPI decides to parse a body as JSON: a subtype json or +json (text/json too)."""
    subtype = content_type.split(";", 1)[0].strip().partition("/")[2]
    return subtype == "json" or subtype.endswith("+json")


async def _read_body(receive: Receive, limit: int, what: str, field: str) -> bytes:
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: nothing to answer
            raise ApiError(400, "the client disconnected before sending the body", field)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit, what, field)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hands the app the body it was read from, then whatever the client sends next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}
    return replay


def _counting(receive: Receive, limit: int, what: str, field: str) -> Receive:
    """``receive`` that raises BodyTooLarge (answered by the app's ApiError handler) past ``limit``."""
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            raise BodyTooLarge(limit, what, field)
        return message
    return counted


def check_json(body: bytes, max_depth: int) -> None:
    """Raises a 422 ApiError when a JSON body is not UTF-8, nests too deep, or holds a NUL or lone surrogate.

    Syntax errors are left to the route's parser, which says where they are."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(422, f"the body is not UTF-8 JSON: byte 0x{body[exc.start]:02x} at position "
                            f"{exc.start} is not UTF-8", "body")
    if json_depth(body) > max_depth:
        raise ApiError(422, f"the JSON body is nested more than {max_depth} levels deep", "body")
    if SUSPECT_ESCAPE.search(body):
        _check_strings(body)


def json_depth(body: bytes) -> int:
    """How deep brackets nest in a JSON text, strings left out; linear, and never recursive."""
    codes = np.frombuffer(STRING.sub(b"", body), np.uint8)
    brackets = codes[np.isin(codes, BRACKETS)]  # far fewer than the bytes: numbers go between
    return int(np.cumsum(np.where(np.isin(brackets, OPEN), 1, -1)).max(initial=0))


def _check_strings(body: bytes) -> None:
    try:
        value = json.loads(body)  # the depth is bounded now: no recursion error
    except ValueError:
        return  # not JSON: the route's parser names the error and where it is
    for path, text in _strings(value, ""):
        if "\x00" in text:
            raise ApiError(422, "contains a NUL character (\\u0000), which cannot be stored", path or "body")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(422, "contains a lone surrogate (\\ud800-\\udfff escape without its pair), "
                                "which is not a character", path or "body")


def _strings(value, path: str):
    """(path, string) for every string in a parsed JSON value, keys included (named by their object)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield path, key
            yield from _strings(item, f"{path}.{key}" if path else key)
