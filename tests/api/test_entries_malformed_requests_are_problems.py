"""Requests that are not even a submission: broken JSON, duplicate members, oversized bodies,
no credentials. Each is a problem+json and writes nothing."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from tests.api.support import ENTRIES, assert_problem, nothing_written, post, post_raw
from tests.conftest import World, new_batch_id


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b'{"payload": {', "malformed-json"),
        (b"{'single': 'quotes'}", "malformed-json"),
        (b"\xff\xfe{}", "malformed-json"),
        (b"[1, 2,]", "malformed-json"),
        (b'{"entries": [NaN]}', "number-out-of-range"),
    ],
)
def test_malformed_json_is_a_400(world: World, raw: bytes, code: str) -> None:
    with nothing_written():
        body = assert_problem(post_raw(world.recycler, raw), 400, code, None)
    assert body["hint"]


def test_duplicate_member_names_are_refused(world: World) -> None:
    r = world.recycler
    envelope = r.sign(
        r.payload("intake", batch=new_batch_id("evtb"), material="swarf", mass_g=1_000, origin="pre_consumer")
    )
    # The signed payload says 1000 g; a second mass_g member could make parsers disagree.
    raw = json.dumps(envelope).replace('"mass_g": 1000', '"mass_g": 1000, "mass_g": 1').encode()
    with nothing_written():
        body = assert_problem(post_raw(r, raw), 400, "duplicate-member", None)
    assert "mass_g" in body["detail"]


def test_duplicate_envelope_members_are_refused(world: World) -> None:
    r = world.recycler
    envelope = r.sign(
        r.payload("intake", batch=new_batch_id("evtb"), material="swarf", mass_g=1_000, origin="pre_consumer")
    )
    raw = json.dumps(envelope)[:-1] + ', "key_id": "' + "0" * 64 + '"}'
    with nothing_written():
        assert_problem(post_raw(r, raw.encode()), 400, "duplicate-member", None)


def test_a_body_over_two_megabytes_is_a_413_problem(world: World) -> None:
    r = world.recycler
    raw = b'{"entries": [' + b'"' + b"x" * (2 * 1024 * 1024) + b'"]}'
    with nothing_written():
        body = assert_problem(post_raw(r, raw), 413, "body-too-large", None)
    assert str(2 * 1024 * 1024) in body["detail"]


def test_a_body_just_under_the_limit_is_parsed(world: World) -> None:
    r = world.recycler
    raw = b'{"entries": ["' + b"x" * (2 * 1024 * 1024 - 100) + b'"]}'
    with nothing_written():
        # Parsed, and refused for what it is (not an envelope), not for its size.
        assert_problem(post_raw(r, raw), 400, "invalid-envelope", "/entries/0", index=0)


def test_an_unauthenticated_request_is_a_401_problem(world: World) -> None:
    r = world.recycler
    envelope = r.sign(
        r.payload("intake", batch=new_batch_id("evtb"), material="swarf", mass_g=1_000, origin="pre_consumer")
    )
    anonymous = APIClient()
    with nothing_written():
        response = anonymous.post(ENTRIES, envelope, format="json")
        assert_problem(response, 401, "not-authenticated", None)
        assert response["WWW-Authenticate"] == "Token"
        for path in ("/api/v1/entries/", "/api/v1/batches/", "/api/v1/keys/", "/api/v1/entries/0/"):
            assert_problem(anonymous.get(path), 401, "not-authenticated", None)


def test_an_unknown_token_is_a_401_problem(world: World) -> None:
    r = world.recycler
    envelope = r.sign(
        r.payload("intake", batch=new_batch_id("evtb"), material="swarf", mass_g=1_000, origin="pre_consumer")
    )
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Token mlt_not-a-real-token")
    with nothing_written():
        assert_problem(stranger.post(ENTRIES, envelope, format="json"), 401, "not-authenticated", None)


@pytest.mark.parametrize(
    ("body", "code", "pointer"),
    [
        ({"entries": []}, "invalid-request", "/entries"),
        ({"entries": {"a": 1}}, "invalid-request", "/entries"),
        ([], "invalid-envelope", None),
        ("just a string", "invalid-envelope", None),
    ],
)
def test_a_body_that_is_neither_an_envelope_nor_a_bulk_is_refused(
    world: World, body: object, code: str, pointer: str | None
) -> None:
    with nothing_written():
        assert_problem(post(world.recycler, body), 400, code, pointer)


@pytest.mark.parametrize("bulk_wrapped", [False, True])
def test_a_lone_surrogate_in_an_envelope_member_name_is_a_400_not_a_server_error(
    world: World, bulk_wrapped: bool
) -> None:
    """The refusal names the unexpected member; echoing it must not break the response."""
    r = world.recycler
    envelope = r.sign(
        r.payload("intake", batch=new_batch_id("evtb"), material="swarf", mass_g=1, origin="pre_consumer")
    )
    raw = json.dumps(envelope)[:-1] + ', "\\ud800x": 1}'
    if bulk_wrapped:
        raw = '{"entries": [' + raw + "]}"
    with nothing_written():
        response = post_raw(r, raw.encode())
        if bulk_wrapped:
            body = assert_problem(response, 400, "invalid-envelope", "/entries/0/\\ud800x", index=0)
        else:
            body = assert_problem(response, 400, "invalid-envelope", "/\\ud800x")
    assert "x" in body["detail"]
    response.content.decode("utf-8")  # well-formed UTF-8 throughout


def test_a_body_that_is_not_json_is_a_415_problem(world: World) -> None:
    r = world.recycler
    with nothing_written():
        response = r.client.generic(
            "POST", ENTRIES, "payload=x", content_type="application/x-www-form-urlencoded"
        )
        assert_problem(response, 415, "unsupported-media-type", None)
