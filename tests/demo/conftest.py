"""Fixtures for the demo-seed tests: a private VAR_DIR per test (so persona keys never land
in the developer's var/) and helpers to run seed_demo through call_command."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command


@pytest.fixture(autouse=True)
def var_dir(settings: Any, tmp_path: Path) -> Path:
    """settings.VAR_DIR in a temporary directory: demo keys go to <tmp>/var/demo-keys."""
    path = tmp_path / "var"
    settings.VAR_DIR = path
    return path


def run(*args: str) -> tuple[str, str]:
    """Run a management command; return (stdout, stderr)."""
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def seed_json() -> dict[str, Any]:
    """``seed_demo --json``: stdout must be exactly one JSON object."""
    out, _ = run("seed_demo", "--json")
    document: dict[str, Any] = json.loads(out)
    return document
