"""Refuse oversized request bodies with 413 before anything reads them."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from api.problems import json_problem


class BodySizeLimitMiddleware:
    """A declared Content-Length over DATA_UPLOAD_MAX_MEMORY_SIZE is answered with 413.

    Django itself would raise RequestDataTooBig (a 400) only when the body is read; a
    client deserves to be told the real reason, and the server should not read 2 MB+ first.
    Bodies without a Content-Length are still capped by Django when read (api.parsers).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            return json_problem(
                "body-too-large",
                f"The request body is {length} bytes; the limit is {limit} bytes. "
                "Split a bulk into several requests.",
            )
        return self.get_response(request)
