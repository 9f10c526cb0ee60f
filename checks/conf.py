"""Settings of the checks, read through typed helpers that refuse malformed values.

``LEDGER_CHECK_OVERRIDES`` overrides the rule defaults (checks.rules) per process, with
"*" for every process, e.g.::

    LEDGER_CHECK_OVERRIDES = {"hpms": {"yield_min": 0.75}, "*": {"transit_tolerance": 0.01}}

It can also be given as JSON in the environment variable of the same name. The other
knobs (lease, drain age, webhook retries) are plain settings with environment fallbacks.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from fractions import Fraction
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from checks.rules import Limits, limits_for
from ledger.models import Material, Process

_FRACTIONS = {"transit_tolerance", "balance_tolerance", "element_tolerance", "yield_min", "yield_max"}
_NULLABLE = {"balance_tolerance", "yield_min", "yield_max"}
_BOOLS = {"stoichiometric", "swarf_required"}
_GLOBAL_ONLY = {"transit_tolerance", "unreceived_days"}
_FIELDS = {f.name for f in fields(Limits)}


def _fraction(where: str, value: Any, nullable: bool) -> Fraction | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ImproperlyConfigured(f"{where} must be a number; got {value!r}.")
    try:
        number = Fraction(str(value))
    except ValueError:
        raise ImproperlyConfigured(f"{where} must be a number; got {value!r}.") from None
    if number < 0 or number > 10:
        raise ImproperlyConfigured(f"{where} must lie between 0 and 10; got {value!r}.")
    return number


def parse_overrides(raw: Any) -> dict[str, dict[str, Any]]:
    """Validate an overrides mapping and convert its numbers to exact fractions."""
    if not isinstance(raw, dict):
        raise ImproperlyConfigured("LEDGER_CHECK_OVERRIDES must be a mapping of process -> {field: value}.")
    parsed: dict[str, dict[str, Any]] = {}
    for process, values in raw.items():
        if process != "*" and process not in Process.values:
            raise ImproperlyConfigured(
                f"LEDGER_CHECK_OVERRIDES: unknown process {process!r}; use '*' or one of "
                f"{', '.join(Process.values)}."
            )
        if not isinstance(values, dict):
            raise ImproperlyConfigured(f"LEDGER_CHECK_OVERRIDES[{process!r}] must be a mapping.")
        out: dict[str, Any] = {}
        for name, value in values.items():
            where = f"LEDGER_CHECK_OVERRIDES[{process!r}][{name!r}]"
            if name not in _FIELDS:
                raise ImproperlyConfigured(f"{where}: unknown field; known: {', '.join(sorted(_FIELDS))}.")
            if name in _GLOBAL_ONLY and process != "*":
                raise ImproperlyConfigured(f"{where}: {name} is not per process; set it under '*'.")
            if name in _FRACTIONS:
                out[name] = _fraction(where, value, name in _NULLABLE)
            elif name in _BOOLS:
                if not isinstance(value, bool):
                    raise ImproperlyConfigured(f"{where} must be true or false.")
                out[name] = value
            elif name == "unreceived_days":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ImproperlyConfigured(f"{where} must be a positive integer.")
                out[name] = value
            elif name == "yield_basis":
                if value not in ("mass", "rare_earths"):
                    raise ImproperlyConfigured(f"{where} must be 'mass' or 'rare_earths'.")
                out[name] = value
            elif name == "product_materials":
                if not isinstance(value, list | tuple) or any(m not in Material.values for m in value):
                    raise ImproperlyConfigured(f"{where} must be a list of materials.")
                out[name] = frozenset(value)
        parsed[process] = out
    return parsed


def overrides() -> dict[str, dict[str, Any]]:
    """The validated overrides: settings.LEDGER_CHECK_OVERRIDES, else the environment."""
    raw = getattr(settings, "LEDGER_CHECK_OVERRIDES", None)
    if raw is None:
        text = os.environ.get("LEDGER_CHECK_OVERRIDES", "")
        try:
            raw = json.loads(text) if text else {}
        except ValueError:
            raise ImproperlyConfigured("LEDGER_CHECK_OVERRIDES is not valid JSON.") from None
    return parse_overrides(raw)


def limits(process: str = "*") -> Limits:
    """The limits in force for ``process`` ("*" for the global ones)."""
    return limits_for(process, overrides())


def _setting_int(name: str, default: int) -> int:
    value = getattr(settings, name, None)
    if value is None:
        raw = os.environ.get(name, "")
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ImproperlyConfigured(f"{name} must be a non-negative integer.")
    return value


def _setting_float(name: str, default: float) -> float:
    value = getattr(settings, name, None)
    if value is None:
        raw = os.environ.get(name, "")
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ImproperlyConfigured(f"{name} must be a non-negative number.")
    return float(value)


def lease_seconds() -> int:
    """How long a claimed check is reserved for its worker before another may take it."""
    return _setting_int("LEDGER_CHECK_LEASE_SECONDS", 300)


def drain_after_seconds() -> int:
    """Age after which a pending check is re-enqueued by drain_pending."""
    return _setting_int("LEDGER_CHECK_DRAIN_AFTER_SECONDS", 60)


def debug_sleep_seconds() -> float:
    """Test-only: seconds a check sleeps after claiming its work (to kill a worker mid-check)."""
    return _setting_float("LEDGER_CHECK_TEST_SLEEP", 0.0)


def webhook_max_attempts() -> int:
    return _setting_int("LEDGER_WEBHOOK_MAX_ATTEMPTS", 8)


def webhook_backoff_seconds() -> int:
    """First retry delay of a failed webhook delivery; doubles with each attempt."""
    return _setting_int("LEDGER_WEBHOOK_BACKOFF_SECONDS", 30)


def webhook_timeout() -> float:
    return _setting_float("LEDGER_WEBHOOK_TIMEOUT", 5.0)


def webhook_allow_http() -> bool:
    """Plain http:// webhook URLs are allowed only in the embedded/debug setup by default."""
    value = getattr(settings, "LEDGER_WEBHOOK_ALLOW_HTTP", None)
    if value is None:
        return bool(settings.DEBUG)
    return bool(value)
