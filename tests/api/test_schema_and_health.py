"""The OpenAPI schema, the docs page, /healthz and the log identity endpoint."""

import pytest
from django.core.management import call_command

from ledger.logkey import log_public_key_raw
from ledger.protocol.keys import public_key_raw
from ledger.protocol.note import parse_vkey


@pytest.mark.django_db
def test_openapi_schema_generates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for path in ("/api/v1/entries/", "/api/v1/batches/{id}/", "/api/v1/keys/", "/api/v1/log/"):
        assert path in text


@pytest.mark.django_db
def test_docs_page_is_served(client):
    assert client.get("/api/docs/").status_code == 200


@pytest.mark.django_db
def test_healthz_checks_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.django_db
def test_log_endpoint_is_public_and_names_the_log_key(client, settings):
    body = client.get("/api/v1/log/").json()
    assert body["origin"] == settings.LEDGER_LOG_ORIGIN
    assert body["size"] == 0
    verifier = parse_vkey(body["vkey"])
    assert verifier.name == settings.LEDGER_LOG_ORIGIN
    assert public_key_raw(verifier.public_key) == log_public_key_raw()
