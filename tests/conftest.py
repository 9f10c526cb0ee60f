"""Shared personas: a realistic chain of organisations, each with a facility, a user, an API
token and a registered signing key, through the same code paths as production.

recycler (collects and dismantles EV motors) -> processor (HPMS) -> magnet maker -> OEM,
plus an auditor and an outsider who is in none of it.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rest_framework.test import APIClient

from accounts.models import ApiToken, Facility, Organisation, Role, User
from ledger import logkey, services
from ledger.protocol.envelope import b64url_encode, make_envelope
from ledger.protocol.keys import generate_private_key, public_key_raw

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "vectors"
IN_CI = bool(os.environ.get("CI"))


def need_service(name: str, available: bool) -> None:
    """Skip a test that needs an absent service locally; fail it under CI."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{name} is required under CI but is not configured/reachable.")
    pytest.skip(f"{name} not available (set it up, or run under CI to make this a failure)")


@pytest.fixture(autouse=True)
def _log_key(tmp_path_factory: pytest.TempPathFactory, settings: Any) -> Iterator[None]:
    """Every test session signs with a fresh log key in a temporary directory."""
    path = tmp_path_factory.getbasetemp() / "log-key.pem"
    settings.LEDGER_LOG_KEY_FILE = str(path)
    settings.LEDGER_LOG_KEY_AUTOCREATE = True
    logkey.log_private_key.cache_clear()
    yield
    logkey.log_private_key.cache_clear()


_ids = itertools.count(1)


@dataclass
class Persona:
    """An organisation as a client sees it: its token, its signing key, its facility."""

    name: str
    org: Organisation
    facility: Facility
    user: User
    token: str
    key: Ed25519PrivateKey
    client: APIClient = field(repr=False)

    def payload(self, type_: str, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "type": type_,
            "org": self.org.slug,
            "facility": self.facility.code,
            "occurred_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        body.update(fields)
        return body

    def sign(self, payload: dict[str, Any]) -> dict[str, Any]:
        return make_envelope(self.key, payload)

    def submit(self, type_: str, **fields: Any) -> Any:
        """Sign and POST one entry; returns the response."""
        return self.client.post("/api/v1/entries/", self.sign(self.payload(type_, **fields)), format="json")

    def submit_ok(self, type_: str, **fields: Any) -> dict[str, Any]:
        response = self.submit(type_, **fields)
        assert response.status_code == 201, response.json()
        body: dict[str, Any] = response.json()
        return body


def make_persona(name: str, slug: str, role: str, country: str = "DE") -> Persona:
    org = Organisation.objects.create(slug=slug, name=name, role=role)
    facility = Facility.objects.create(
        organisation=org, code=f"{slug}-site", name=f"{name} site", country=country
    )
    user = User.objects.create_user(username=f"{slug}-api", organisation=org)
    _, token = ApiToken.issue(user, "tests")
    key = generate_private_key()
    services.register_key(org, b64url_encode(public_key_raw(key)), label="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return Persona(name, org, facility, user, token, key, client)


@dataclass
class World:
    recycler: Persona
    processor: Persona
    maker: Persona
    oem: Persona
    auditor: Persona
    outsider: Persona

    def all(self) -> list[Persona]:
        return [self.recycler, self.processor, self.maker, self.oem, self.auditor, self.outsider]


@pytest.fixture
def world(db: None) -> World:
    return World(
        recycler=make_persona("EV Take-Back GmbH", "evtb", Role.PROCESSOR),
        processor=make_persona("HPMS Works Ltd", "hpms", Role.PROCESSOR, "GB"),
        maker=make_persona("Magnet Makers SAS", "magm", Role.PROCESSOR, "FR"),
        oem=make_persona("Motorwerk AG", "motorwerk", Role.OEM),
        auditor=make_persona("CertBody", "certbody", Role.AUDITOR),
        outsider=make_persona("Nosy Corp", "nosy", Role.PROCESSOR),
    )


# Fixture composition, EV traction grade (reference/domain.md 1.1): ppm by mass.
EV_MAGNET_PPM = {"Nd": 230000, "Pr": 60000, "Dy": 20000, "Tb": 3000, "B": 10000, "Co": 10000, "Fe": 660000}


def new_batch_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids):05d}-{uuid.uuid4().hex[:6]}"
