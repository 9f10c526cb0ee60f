"""Strict JSON parsing: duplicate members and malformed text become problem+json."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions
from rest_framework.parsers import JSONParser

from ledger.errors import EntryRejected
from ledger.protocol.canonical import ProtocolError, parse_json


class BodyTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "body-too-large"
    default_detail = "The request body is larger than the server accepts."


class StrictJSONParser(JSONParser):
    """JSON per I-JSON: no duplicate member names, no NaN/Infinity."""

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None
    ) -> Any:
        try:
            raw = stream.read() if stream is not None else b""
        except RequestDataTooBig:
            raise BodyTooLarge() from None
        if not raw:
            raise EntryRejected("malformed-json", "The request body is empty.")
        try:
            return parse_json(raw)
        except ProtocolError as exc:
            raise EntryRejected(exc.code, exc.detail, exc.pointer) from None
