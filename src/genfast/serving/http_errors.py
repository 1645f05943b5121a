"""Every error the HTTP server answers, in OpenAI's shape, and an OpenAPI document that says so."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from genfast.serving.protocol import ErrorResponse, error_body

log = logging.getLogger("genfast.serving")

_KIND = {400: "invalid_request_error", 404: "not_found_error", 405: "invalid_request_error",
         408: "timeout", 413: "invalid_request_error", 431: "invalid_request_error", 429: "rate_limit_error",
         503: "server_error", 504: "timeout"}

ROUTE_ERRORS = {400: "Invalid request (OpenAI error object; `param` names the field).",
                404: "Unknown model.", 408: "The body did not arrive within --read-timeout.",
                413: "Request body above --max-request-bytes.",
                431: "Request line and headers above their limit.",
                429: "Every row is busy and the queue is full; retry after `Retry-After` s.",
                500: "The request failed inside the engine (the others go on).",
                503: "Starting or shutting down.", 504: "The request did not finish within --request-timeout."}
"""Status codes a generation route can answer, for the OpenAPI document."""


def error_response(status: int, message: str, kind: str | None = None, param: str | None = None,
                   code: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, kind or _KIND.get(status, "server_error"), code, param),
                        status_code=status, headers=headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return validation_error_response(exc.errors())


def validation_error_response(errors: list[dict]) -> JSONResponse:
    """pydantic's (or FastAPI's 422) errors as OpenAI's 400 with the offending field in ``param``."""
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    # a union (str | list | ...) reports one error per branch; the field name is what matters
    loc = [p for p in loc if not (p in ("str", "int", "float", "bool", "none") or "[" in p or p.isdigit())]
    param = loc[0] if loc else None
    kind = first.get("type", "")
    if kind == "extra_forbidden":
        message = f"Unrecognized request argument supplied: {param}."
    elif kind == "json_invalid":
        message = "The body is not valid JSON."
        param = None
    else:
        message = f"Invalid request: {'.'.join(loc) or 'body'}: {first.get('msg', 'malformed')}".replace(
            "Value error, ", "")
    return error_response(400, message, param=param)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = {404: f"No route {request.url.path}.", 405: f"{request.method} is not allowed on {request.url.path}."
               }.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path)
    return error_response(500, f"Internal error: {type(exc).__name__}.", "server_error")


def install_error_handlers(app: FastAPI, body_models: tuple[type[BaseModel], ...] = ()) -> None:
    """OpenAI-shaped answers for validation errors, 404/405 and bugs (bodies that are not JSON, too deep or
    not UTF-8 are answered by the routes, which parse them);
    ``body_models``: request bodies the routes parse themselves, added to the OpenAPI document."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    app.openapi = lambda: _openapi(app, body_models)


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that parses ``model`` itself (so FastAPI does not)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def _openapi(app: FastAPI, body_models: tuple[type[BaseModel], ...]) -> dict[str, Any]:
    """FastAPI's document, with the 422 it adds to every body route replaced by the 400 we send."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in body_models:
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[model.__name__] = body
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)
    app.openapi_schema = schema
    return schema


def route_responses() -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse, "description": text} for code, text in ROUTE_ERRORS.items()}
