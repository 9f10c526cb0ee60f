"""create_org, issue_token and register_key: onboarding without the admin, with clear errors."""

from __future__ import annotations

import json

import pytest
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from accounts.models import ApiToken, Facility, Organisation, SigningKey, User
from ledger.models import LogRecord
from ledger.protocol.envelope import b64url_encode, make_envelope
from ledger.protocol.keys import generate_private_key, key_id, public_key_raw
from tests.demo.conftest import run

CREATE = ("create_org", "magcycle", "--name", "MagCycle BV", "--role", "processor", "--facility",
          "magcycle-eindhoven", "--country", "nl")  # fmt: skip


@pytest.mark.django_db
def test_a_new_organisation_is_onboarded_and_submits_through_the_api() -> None:
    out, _ = run(*CREATE)
    assert "Created organisation magcycle" in out
    org = Organisation.objects.get(slug="magcycle")
    assert (org.name, org.role) == ("MagCycle BV", "processor")
    facility = Facility.objects.get(organisation=org)
    assert (facility.code, facility.country) == ("magcycle-eindhoven", "NL")

    token, err = run("issue_token", "magcycle-erp", "--org", "magcycle", "--name", "erp")
    token = token.strip()
    assert token.startswith(ApiToken.PREFIX) and "\n" not in token
    assert "Created user magcycle-erp" in err
    assert User.objects.get(username="magcycle-erp").organisation == org

    key = generate_private_key()
    raw = public_key_raw(key)
    size = LogRecord.objects.count()
    out, _ = run("register_key", "--org", "magcycle", b64url_encode(raw), "--label", "erp")
    answer = json.loads(out)
    assert answer["key_id"] == key_id(raw) and answer["org"] == "magcycle"
    assert SigningKey.objects.get(key_id=key_id(raw)).organisation == org
    assert LogRecord.objects.count() == size + 1
    assert LogRecord.objects.get(seq=answer["registered_seq"]).entry_type == "key_registered"

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    payload = {
        "id": "0b6c2f1e-3d4a-4b5c-8d6e-7f8091a2b3c4",
        "type": "intake",
        "org": "magcycle",
        "facility": "magcycle-eindhoven",
        "occurred_at": "2025-01-15T08:00:00Z",
        "batch": "magcycle-hdd-0001",
        "material": "magnet_scrap",
        "mass_g": 2000,
        "origin": "post_consumer",
    }
    response = client.post("/api/v1/entries/", make_envelope(key, payload), format="json")
    assert response.status_code == 201, response.content


@pytest.mark.django_db
def test_create_org_refuses_an_existing_slug_and_bad_input_clearly() -> None:
    run(*CREATE)
    with pytest.raises(CommandError, match="'magcycle' already exists"):
        run(*CREATE)
    with pytest.raises(CommandError, match="country must be an ISO 3166-1 alpha-2"):
        run(
            "create_org", "other", "--name", "O", "--role", "oem", "--facility", "other-1", "--country", "NLD"
        )
    with pytest.raises(CommandError, match="slug"):
        run(
            "create_org", "Bad_Slug", "--name", "B", "--role", "oem", "--facility", "bad-1", "--country", "DE"
        )
    with pytest.raises(CommandError, match="Invalid facility"):
        run(
            "create_org", "fine", "--name", "F", "--role", "oem", "--facility", "No Spaces", "--country", "DE"
        )
    with pytest.raises(CommandError, match="invalid choice"):
        run(
            "create_org",
            "fine",
            "--name",
            "F",
            "--role",
            "smelter",
            "--facility",
            "fine-1",
            "--country",
            "DE",
        )
    assert list(Organisation.objects.values_list("slug", flat=True)) == ["magcycle"]
    assert Facility.objects.count() == 1


@pytest.mark.django_db
def test_issue_token_refuses_unknown_organisations_and_users_of_another() -> None:
    run(*CREATE)
    run("create_org", "voltx", "--name", "VoltX", "--role", "oem", "--facility", "voltx-1", "--country", "DE")
    run("issue_token", "shared-name", "--org", "magcycle")
    with pytest.raises(CommandError, match="No organisation 'nobody'"):
        run("issue_token", "someone", "--org", "nobody")
    with pytest.raises(CommandError, match="belongs to magcycle, not 'voltx'"):
        run("issue_token", "shared-name", "--org", "voltx")
    # A second token for the same user is fine: one per system that uses it.
    second, err = run("issue_token", "shared-name", "--org", "magcycle")
    assert "Existing user" in err
    assert ApiToken.objects.filter(user__username="shared-name").count() == 2
    assert second.strip() and User.objects.filter(username="shared-name").count() == 1


@pytest.mark.django_db
def test_register_key_refuses_duplicates_weak_keys_and_unknown_organisations() -> None:
    run(*CREATE)
    raw = public_key_raw(generate_private_key())
    run("register_key", "--org", "magcycle", b64url_encode(raw))
    size = LogRecord.objects.count()

    with pytest.raises(CommandError, match="already registered"):
        run("register_key", "--org", "magcycle", b64url_encode(raw))
    with pytest.raises(CommandError, match="small-order"):
        run("register_key", "--org", "magcycle", b64url_encode(bytes([1]) + bytes(31)))
    with pytest.raises(CommandError, match="base64url"):
        run("register_key", "--org", "magcycle", "not a key!")
    with pytest.raises(CommandError, match="No organisation 'nobody'"):
        run("register_key", "--org", "nobody", b64url_encode(public_key_raw(generate_private_key())))
    assert LogRecord.objects.count() == size
