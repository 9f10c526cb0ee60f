"""RFC 9457 problem+json responses for every error the API returns."""

from __future__ import annotations

from typing import Any

from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ledger.errors import PROBLEMS, EntryRejected

CONTENT_TYPE = "application/problem+json"


def problem_type(code: str) -> str:
    """The stable ``type`` URI of a problem: a page under /problems/ describes it."""
    return f"/problems/{code}"


def _encodable(text: str) -> str:
    """``text`` with anything UTF-8 cannot carry (lone surrogates a client sent in a member
    name we echo back) escaped, so that the refusal itself can always be rendered."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def problem_body(
    code: str,
    detail: str,
    *,
    status_code: int | None = None,
    pointer: str = "",
    index: int | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    known = PROBLEMS.get(code)
    detail, pointer = _encodable(detail), _encodable(pointer)
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title or (known[1] if known else code.replace("-", " ").capitalize()),
        "status": status_code or (known[0] if known else 400),
        "detail": detail,
        "code": code,
    }
    if known:
        body["hint"] = known[2]
    if pointer or index is not None:
        body["errors"] = [{"pointer": pointer, "detail": detail}]
    if index is not None:
        body["index"] = index
    return body


def problem_response(code: str, detail: str, **kwargs: Any) -> Response:
    body = problem_body(code, detail, **kwargs)
    return Response(body, status=body["status"], content_type=CONTENT_TYPE)


def rejected_response(exc: EntryRejected) -> Response:
    return problem_response(exc.code, exc.detail, pointer=exc.pointer, index=exc.index)


def json_problem(code: str, detail: str, **kwargs: Any) -> JsonResponse:
    """The same body for plain Django views and middleware (outside DRF)."""
    body = problem_body(code, detail, **kwargs)
    return JsonResponse(body, status=body["status"], content_type=CONTENT_TYPE)


def _flatten(data: Any, pointer: str = "") -> list[dict[str, str]]:
    if isinstance(data, dict):
        return [e for k, v in data.items() for e in _flatten(v, f"{pointer}/{k}")]
    if isinstance(data, list) and data and not all(isinstance(x, str) for x in data):
        return [e for i, v in enumerate(data) for e in _flatten(v, f"{pointer}/{i}")]
    if isinstance(data, list):
        return [{"pointer": pointer, "detail": str(x)} for x in data]
    return [{"pointer": pointer, "detail": str(data)}]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: every error becomes problem+json."""
    if isinstance(exc, EntryRejected):
        return rejected_response(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = errors[0] if errors else {"pointer": "", "detail": "Invalid request."}
        body = problem_body(
            "invalid-request",
            f"{first['pointer'] or 'request'}: {first['detail']}",
            status_code=response.status_code,
        )
        body["errors"] = errors
    else:
        code = {
            status.HTTP_401_UNAUTHORIZED: "not-authenticated",
            status.HTTP_403_FORBIDDEN: "permission-denied",
            status.HTTP_404_NOT_FOUND: "not-found",
            status.HTTP_405_METHOD_NOT_ALLOWED: "method-not-allowed",
            status.HTTP_406_NOT_ACCEPTABLE: "not-acceptable",
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "unsupported-media-type",
            status.HTTP_429_TOO_MANY_REQUESTS: "throttled",
        }.get(response.status_code, getattr(exc, "default_code", "error"))
        detail = getattr(exc, "detail", str(exc))
        body = problem_body(str(code), str(detail), status_code=response.status_code)
    response.data = body
    response.content_type = CONTENT_TYPE
    return response
