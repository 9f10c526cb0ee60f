"""Every problem code is documented and has a page behind its ``type`` URI."""

from pathlib import Path

import pytest

from ledger.errors import PROBLEMS

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"


def test_every_problem_code_is_in_docs_errors_md():
    text = DOC.read_text()
    missing = [code for code in PROBLEMS if f"`{code}`" not in text]
    assert not missing, f"add these to docs/errors.md: {missing}"


@pytest.mark.parametrize("code", sorted(PROBLEMS))
def test_problem_type_uri_resolves(client, code):
    body = client.get(f"/problems/{code}").json()
    assert body["type"] == f"/problems/{code}"
    assert body["status"] == PROBLEMS[code][0]


def test_unknown_problem_page_is_404(client):
    assert client.get("/problems/no-such-thing").status_code == 404
