"""The proportional origin method on its own (pure function, no database)."""

import pytest

from ledger.origin import METHOD, Contribution

POST = METHOD.intake("post_consumer")
PRIMARY = METHOD.intake("primary")


def test_element_shares_are_weighted_by_element_grams_not_mass():
    out = METHOD.blend(
        [
            Contribution(1000, {"Dy": 40000, "Nd": 230000}, POST),  # 40 g Dy, 230 g Nd
            Contribution(3000, {"Dy": 0, "Nd": 290000}, PRIMARY),  # 0 g Dy, 870 g Nd
        ]
    )
    assert out["mass"]["post_consumer"] == pytest.approx(0.25)
    assert out["elements"]["Dy"]["post_consumer"] == pytest.approx(1.0)
    assert out["elements"]["Nd"]["post_consumer"] == pytest.approx(230 / 1100)


def test_an_element_no_input_contains_is_left_out_not_unknown():
    out = METHOD.blend(
        [Contribution(1000, {"Nd": 230000}, POST), Contribution(1000, {"Nd": 290000}, PRIMARY)]
    )
    assert "Sm" not in out["elements"]
    assert out["elements"]["Nd"] is not None


def test_missing_composition_makes_mixed_shares_unknown():
    out = METHOD.blend([Contribution(1000, None, POST), Contribution(1000, {"Dy": 10000}, PRIMARY)])
    assert out["elements"]["Dy"] is None


def test_missing_composition_is_harmless_when_every_input_has_the_same_origin():
    out = METHOD.blend([Contribution(1000, None, POST), Contribution(500, {"Dy": 10000}, POST)])
    assert out["elements"]["Dy"] == {"post_consumer": 1.0, "pre_consumer": 0.0, "primary": 0.0}
