"""The OpenAPI document as the contract: the one error body, and every status code each operation can answer.

A route declares the refusals its own logic makes (``responses=errors(404, 409)``); those
every route shares are added here, once, to the document FastAPI built: where FastAPI
validates parameters or a body it documents its own 422 (``HTTPValidationError``, ``detail``
an array), replaced by ours; where a body is read, a 400 for one that cannot be read at
all; where the API key is needed, 401, and 503 for a database that cannot be reached (the
key lookup reaches it, and so does the request's session: every route that takes one also
takes the key; /readyz documents its own). app/errors.py answers each of them as ErrorBody.
"""
from fastapi import FastAPI
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from app.request_limits import BODY_METHODS


class FieldError(BaseModel):
    field: str = Field(description="the offending field as the client wrote it: model.layers[3].out_features, "
                                   "a query parameter, a header (Authorization), or body")
    message: str = Field(description="what is wrong with it")


class ErrorBody(BaseModel):
    """Every refusal's body (app/errors.py builds it)."""

    detail: str = Field(description="a one-line summary")
    errors: list[FieldError] = Field(description="one entry per offending field; empty when no field is to blame")


WHY = {
    400: "the body could not be read as the Content-Type it declares (JSON that is not UTF-8, "
         "a broken multipart form)",
    401: "no Authorization header, one that is not 'Bearer <api key>', or an unknown or revoked key",
    404: "the id names nothing this key's tenant owns",
    409: "the request conflicts with the resource's current state",
    413: "the request is over a size limit",
    415: "the body's Content-Type is not one this operation reads",
    429: "over a rate limit (RATE_LIMIT per API key: Retry-After says when to retry) or, where the "
         "operation says so, over a tenant's quota: `detail` names it, its limit and the use",
    422: "the request is invalid: `errors` names each field and what is wrong with it",
    503: "the database is unavailable; nothing was changed, retry after Retry-After seconds",
}
HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string", "const": "Bearer"}, "required": True}},
    503: {"Retry-After": {"schema": {"type": "string"}, "description": "seconds", "required": True}},
    429: {"Retry-After": {"schema": {"type": "string"}, "description": "seconds (a rate limit's refusal)"}},
}
REF = "#/components/schemas/{model}"


def errors(*codes: int, why: dict[int, str] | None = None) -> dict[int, dict]:
    """A route's ``responses`` for the refusals its own logic makes, described by ``why`` or WHY."""
    why = why or {}
    return {code: {"model": ErrorBody, "description": why.get(code, WHY[code]),
                   **({"headers": HEADERS[code]} if code in HEADERS else {})}
            for code in sorted({*codes, *why})}


def install_openapi(app: FastAPI) -> None:
    """Makes ``app.openapi()`` the contract: FastAPI's document, its 422s ours, the key's refusals added."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            document = FastAPI.openapi(app)
            _add_error_body(document)
            for operations in document["paths"].values():
                for method, operation in operations.items():
                    _add_shared_refusals(method, operation)
            for default in ("HTTPValidationError", "ValidationError"):
                document["components"]["schemas"].pop(default, None)
        return app.openapi_schema

    app.openapi = openapi


def _add_shared_refusals(method: str, operation: dict) -> None:
    responses = operation["responses"]
    codes = {401, 429, 503} if operation.get("security") else set()  # 429: app/rate_limits.py
    if "requestBody" in operation:  # FastAPI (or the upload's reader) refuses an unreadable body
        codes.add(400)
    if method.upper() in BODY_METHODS:  # app/request_limits.py counts every such body
        codes.add(413)
    if "HTTPValidationError" in str(responses.get("422", "")):
        del responses["422"]
        codes.add(422)
    for code in sorted(codes):
        responses.setdefault(str(code), _response(code))


def _response(code: int) -> dict:
    out = {"description": WHY[code],
           "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}}}
    if code in HEADERS:
        out["headers"] = HEADERS[code]
    return out


def _add_error_body(document: dict) -> None:
    """ErrorBody and FieldError in components, as FastAPI names them (routes with errors() already did)."""
    _, schemas = models_json_schema([(ErrorBody, "serialization")], ref_template=REF)
    document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in schemas.get("$defs", {}).items():
        document["components"]["schemas"].setdefault(name, schema)
