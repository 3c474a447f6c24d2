"""One error body for every 4xx: {"detail": summary, "errors": [{"field", "message"}]}."""
from typing import get_args

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.ml import spec as S
from app.ml.errors import DataError, SpecError


class ApiError(Exception):
    """A request the service refuses; ``field`` names what the client must change."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers


def _union_tags(union) -> set[str]:
    members = get_args(get_args(union)[0])
    return {get_args(m.model_fields["type"].annotation)[0] for m in members}


# Pydantic puts a discriminated union's tag in the error path (layers.3.linear.x);
# users wrote layers[3].x, so the tags are dropped from the path they see.
UNION_TAGS = _union_tags(S.Layer) | _union_tags(S.Optimizer)


def field_path(loc: tuple, tag_error: bool = False) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out = ""
    for i, p in enumerate(parts):
        if isinstance(p, int):
            out += f"[{p}]"
        elif p in UNION_TAGS and i > 0 and not tag_error:
            continue
        elif isinstance(p, str) and not p.isidentifier():
            continue  # a union branch label such as "constrained-int" or "literal['full']"
        else:
            out += ("." if out else "") + str(p)
    if tag_error:
        out += ".type"
    return out or "body"


def _body(detail: str, errors: list[dict]) -> dict:
    return {"detail": detail, "errors": errors}


def _validation_errors(errors) -> list[dict]:
    """One entry per field; a union's branches that all failed are joined with 'or'."""
    out: list[dict] = []
    for e in errors:
        tag_error = e.get("type") in ("union_tag_invalid", "union_tag_not_found")
        message = e.get("msg", "invalid")
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        value = e.get("input")
        if isinstance(value, (str, int, float, bool)) and e.get("type") != "missing" \
                and len(repr(value)) <= 80 and repr(value) not in message:
            message += f", got {value!r}"
        field = field_path(tuple(e.get("loc", ())), tag_error)
        if e.get("type") == "json_invalid":
            where = e["loc"][-1] if isinstance(e.get("loc", [None])[-1], int) else "?"
            error = (e.get("ctx") or {}).get("error", "")
            field, message = "body", f"the body is not valid JSON: {error} (at character {where})"
        same = next((o for o in out if o["field"] == field), None)
        if same is None:
            out.append({"field": field, "message": message})
        elif message not in same["message"]:
            same["message"] += f"; or {message}"
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        errors = _validation_errors(exc.errors())
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:3])
        return JSONResponse(_body(f"invalid request: {summary}", errors), status_code=422)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        errors = [{"field": exc.field, "message": exc.message}] if exc.field else []
        return JSONResponse(_body(exc.message, errors), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(SpecError)
    @app.exception_handler(DataError)
    async def _spec_error(_: Request, exc: SpecError | DataError):
        return JSONResponse(_body(str(exc), [{"field": exc.field, "message": exc.message}]),
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        return JSONResponse(_body(str(exc.detail), []), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
