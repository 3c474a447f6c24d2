"""One error body for every 4xx: {"detail": summary, "errors": [{"field", "message"}]}."""
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.ml.errors import DataError, SpecError
from app.suggest import suggestion


class ApiError(Exception):
    """A request the service refuses; ``field`` names what the client must change."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers


class FieldErrors(ValueError):
    """A request wrong in several places at once: a 422 listing each {"field", "message"}."""

    def __init__(self, errors: list[dict]):
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors[:3]))
        self.errors = errors


def _tag_of(node, segment: str) -> bool:
    """True when ``segment`` is the discriminator value of a union member, not a field."""
    return isinstance(node, dict) and segment not in node and segment in (node.get("type"), node.get("name"))


def _key_of(node, segment: str) -> bool:
    """True when ``segment`` is a key the client wrote, such as a dotted path ("optimizer.lr")."""
    return isinstance(node, dict) and segment in node


def field_path(loc: tuple, body=None, tag: str | None = None) -> str:
    """Pydantic's error location as the path a user wrote: model.layers[3].out_features.

    Pydantic puts a discriminated union's tag in the location (layers.3.linear.x) and
    labels union branches ("constrained-int"); walking the request body tells them apart
    from real fields, and from keys the client wrote that are not identifiers ("optimizer.lr").
    """
    parts = list(loc)
    if len(parts) > 1 and parts[0] == "header":  # as the client sent it: Idempotency-Key
        return "-".join(word.capitalize() for word in str(parts[1]).replace("_", "-").split("-"))
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    out, node = "", body
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
            node = node[p] if isinstance(node, list) and -len(node) <= p < len(node) else None
        elif not isinstance(p, str) or _tag_of(node, p) or not (p.isidentifier() or _key_of(node, p)):
            continue
        else:
            out += ("." if out else "") + p
            node = node.get(p) if isinstance(node, dict) else None
    if tag:  # the discriminator field itself was wrong or missing
        out += ("." if out else "") + tag
    return out or "body"


def _body(detail: str, errors: list[dict]) -> dict:
    return {"detail": detail, "errors": errors}


def validation_errors(errors, body=None, model: type[BaseModel] | None = None) -> list[dict]:
    """One entry per field; a union's branches that all failed are joined with 'or'.

    ``model`` is the model the body was validated against: an unknown field then gets the
    closest allowed one ("did you mean 'lr'?"), as an unknown type always does.
    """
    out: list[dict] = []
    for e in errors:
        tag = None
        if e.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            tag = str((e.get("ctx") or {}).get("discriminator", "type")).strip("'")
        message = e.get("msg", "invalid")
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        value = e.get("input")
        if isinstance(value, (str, int, float, bool)) and e.get("type") != "missing" \
                and len(repr(value)) <= 80 and repr(value) not in message:
            message += f", got {value!r}"
        hint = suggestion(e, model)
        if hint:
            message += f"; {hint}"
        field = field_path(tuple(e.get("loc", ())), body, tag)
        if e.get("type") == "json_invalid":
            field, message = "body", _json_message(e)
        same = next((o for o in out if o["field"] == field), None)
        if same is None:
            out.append({"field": field, "message": message})
        elif message not in same["message"]:
            same["message"] += f"; or {message}"
    return out


def _json_message(e: dict) -> str:
    """A JSON syntax error: FastAPI's gives the character (loc ("body", 7)), pydantic's the line and column."""
    loc, error = tuple(e.get("loc", ())), (e.get("ctx") or {}).get("error", "")
    where = f" (at character {loc[-1]})" if loc and isinstance(loc[-1], int) else ""
    return f"the body is not valid JSON: {error or e.get('msg', 'invalid')}{where}"


def error_response(exc: ApiError) -> JSONResponse:
    """The one error body for an ApiError, for the handler below and for middleware outside the app."""
    errors = [{"field": exc.field, "message": exc.message}] if exc.field else []
    return JSONResponse(_body(exc.message, errors), status_code=exc.status, headers=exc.headers)


def _body_model(request: Request) -> type[BaseModel] | None:
    """The pydantic model the route validates its body with, if it has one."""
    body_field = getattr(request.scope.get("route"), "body_field", None)
    model = getattr(getattr(body_field, "field_info", None), "annotation", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = validation_errors(exc.errors(), exc.body if isinstance(exc.body, (dict, list)) else None,
                                   _body_model(request))
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:3])
        return JSONResponse(_body(f"invalid request: {summary}", errors), status_code=422)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError):
        return error_response(exc)

    @app.exception_handler(FieldErrors)
    async def _field_errors(_: Request, exc: FieldErrors):
        return JSONResponse(_body(f"invalid request: {exc}", exc.errors), status_code=422)

    @app.exception_handler(SpecError)
    @app.exception_handler(DataError)
    async def _spec_error(_: Request, exc: SpecError | DataError):
        return JSONResponse(_body(str(exc), [{"field": exc.field, "message": exc.message}]),
                            status_code=422)

    @app.exception_handler(OperationalError)
    async def _database_down(_: Request, exc: OperationalError):
        # The database is unreachable (restarting, failing over): a 503 the client can retry,
        # not a 500. Nothing was changed: the request's transaction did not commit.
        return JSONResponse(_body("the database is unavailable; retry in a few seconds", []),
                            status_code=503, headers={"Retry-After": "2"})

    from botocore.exceptions import BotoCoreError, ClientError

    @app.exception_handler(BotoCoreError)
    @app.exception_handler(ClientError)
    async def _store_down(_: Request, exc: Exception):
        # The S3 store (ARTIFACT_URL) is unreachable: a 503 the client can retry, like the
        # database's. Any other store error is the service's own, a 500.
        from app.storage import store_unreachable

        if not store_unreachable(exc):
            return JSONResponse(_body(f"artifact store error: {type(exc).__name__}", []), status_code=500)
        return JSONResponse(_body("the artifact store is unavailable; retry in a few seconds", []),
                            status_code=503, headers={"Retry-After": "2"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        return JSONResponse(_body(str(exc.detail), []), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
