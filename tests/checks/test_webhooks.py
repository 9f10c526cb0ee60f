"""Webhook alerts POSTed to a real local HTTP server: new and resolved flags reach the
organisations they concern and the holders of material downstream, signed with an HMAC of
the body; failures are retried and every attempt is visible to the organisation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone

from checks import services
from checks.models import Delivery, Flag
from tests.checks.conftest import Chain, Receiver, submit_chain, verify
from tests.conftest import World


def register(persona: Any, url: str, secret: str | None = None) -> dict[str, Any]:
    body = {"url": url} if secret is None else {"url": url, "secret": secret}
    response = persona.client.post("/api/v1/webhooks/", body, format="json")
    assert response.status_code == 201, response.json()
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
def hooks(world: World, receiver: Receiver, settings: Any) -> dict[str, dict[str, Any]]:
    settings.LEDGER_WEBHOOK_ALLOW_HTTP = True
    return {
        "processor": register(world.processor, f"{receiver.url}/processor", secret="processor-shared-secret"),
        "maker": register(world.maker, f"{receiver.url}/maker"),
        "outsider": register(world.outsider, f"{receiver.url}/outsider"),
    }


def events(receiver: Receiver, path: str, secret: str) -> set[tuple[str, str]]:
    return {(d["event"], d["flag"]["rule"]) for d in (verify(p, secret) for p in receiver.for_path(path))}


def test_new_flags_reach_the_concerned_and_downstream_organisations_signed(
    world: World,
    receiver: Receiver,
    hooks: dict[str, dict[str, Any]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    assert "secret" in hooks["maker"] and len(hooks["maker"]["secret"]) >= 32  # generated, shown once
    assert "secret" not in world.maker.client.get("/api/v1/webhooks/").json()[0]
    with django_capture_on_commit_callbacks(execute=True):
        chain: Chain = submit_chain(world, leaky=True)
    both = {("flag.opened", "transit_loss"), ("flag.opened", "yield_out_of_range")}
    assert events(receiver, "/processor", "processor-shared-secret") == both
    # The maker holds the powder: the low yield on it, and the transit loss upstream of it.
    assert events(receiver, "/maker", hooks["maker"]["secret"]) == both
    assert receiver.for_path("/outsider") == []
    post = receiver.for_path("/maker")[0]
    assert post["headers"]["X-Ledger-Event"] == "flag.opened"
    document = verify(post, hooks["maker"]["secret"])
    assert document["flag"]["evidence"]["expected_g"] in (36_000, 35_000)
    assert chain.batches["powder"] in {
        b for p in receiver.for_path("/maker") for b in json.loads(p["body"])["flag"]["batches"]
    }
    # A tampered body no longer verifies.
    with pytest.raises(AssertionError):
        verify({**post, "body": post["body"].replace(b"open", b"shut")}, hooks["maker"]["secret"])


def test_resolution_is_alerted_and_deliveries_are_listed_for_their_owner_only(
    world: World,
    receiver: Receiver,
    hooks: dict[str, dict[str, Any]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        submit_chain(world, leaky=True)
    flag = Flag.objects.get(rule="yield_out_of_range")
    with django_capture_on_commit_callbacks(execute=True):
        world.auditor.submit_ok(
            "attest", subject={"flag": flag.pk}, verdict="disputed", note="Assay shows 0.86."
        )
    assert ("flag.resolved", "yield_out_of_range") in events(
        receiver, "/processor", "processor-shared-secret"
    )
    hook_id = hooks["processor"]["id"]
    listed = world.processor.client.get(f"/api/v1/webhooks/{hook_id}/deliveries/").json()
    assert {(d["event"], d["last_status"]) for d in listed} == {("flag.opened", 200), ("flag.resolved", 200)}
    assert all(d["delivered_at"] and d["attempts"] == 1 for d in listed)
    assert world.maker.client.get(f"/api/v1/webhooks/{hook_id}/deliveries/").status_code == 404


def test_a_failed_delivery_is_retried_after_its_backoff(
    world: World,
    receiver: Receiver,
    hooks: dict[str, dict[str, Any]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver.statuses = [503, 503, 503, 503]  # every first attempt fails
    with django_capture_on_commit_callbacks(execute=True):
        submit_chain(world, leaky=True)
    failed = Delivery.objects.filter(webhook_id=hooks["processor"]["id"]).order_by("id").first()
    assert failed is not None
    assert failed.attempts == 1 and failed.last_status == 503 and failed.delivered_at is None
    assert failed.next_attempt_at is not None and failed.next_attempt_at > timezone.now()
    assert services.deliver(failed.pk) is None  # not due yet: nothing is sent
    Delivery.objects.filter(pk=failed.pk).update(next_attempt_at=timezone.now())
    done = services.deliver(failed.pk)
    assert (
        done is not None and done.delivered_at is not None and done.attempts == 2 and done.last_status == 200
    )


def test_plain_http_urls_are_refused_in_production(world: World, settings: Any) -> None:
    settings.LEDGER_WEBHOOK_ALLOW_HTTP = False
    response = world.maker.client.post("/api/v1/webhooks/", {"url": "http://example.org/hook"}, format="json")
    assert response.status_code == 400
    assert (
        world.maker.client.post(
            "/api/v1/webhooks/", {"url": "https://example.org/hook"}, format="json"
        ).status_code
        == 201
    )
