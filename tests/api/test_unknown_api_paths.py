"""Paths no API route matches answer problem+json 404, like every other API error."""

import pytest


@pytest.mark.parametrize("path", ["/api/v1/entries/abc/", "/api/v1/batches/-x/", "/api/v1/nothing/"])
def test_unknown_api_path_is_a_problem_json_404(world, path):
    response = world.auditor.client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not-found"
