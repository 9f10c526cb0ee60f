"""The seeded demo shows its deliberate anomalies as flags: `manage.py seed_demo` in the
embedded mode runs the checks in-process as each entry commits."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from checks.models import Flag, PendingCheck
from ledger import demo


@pytest.mark.django_db(transaction=True)
def test_seed_demo_raises_the_leak_and_the_yield_flags(settings: Any, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path / "var"
    call_command("seed_demo", stdout=StringIO(), stderr=StringIO())

    found = sorted((f.rule, f.batch_id) for f in Flag.objects.all())
    assert found == [
        ("transit_loss", demo.BATCHES["powder"]),
        ("yield_out_of_range", demo.BATCHES["powder_run_b"]),
    ]
    leak = Flag.objects.get(rule="transit_loss")
    assert leak.evidence["expected_g"] == demo.POWDER_G
    assert leak.evidence["actual_g"] == demo.POWDER_RECEIVED_G
    assert Flag.objects.get(rule="yield_out_of_range").evidence["actual"] == pytest.approx(0.70, abs=0.001)
    assert not PendingCheck.objects.exists()
