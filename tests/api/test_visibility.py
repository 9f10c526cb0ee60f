"""Who sees what, for every persona, on every list and detail endpoint.

A chain recycler -> processor -> maker -> OEM, with side branches (steel, residue, swarf, a
recycler batch that goes nowhere) and a separate chain of the outsider. DESIGN "Who sees what":
an auditor sees everything; any other organisation its own entries and the batches it holds or
held; an OEM also the whole pedigree of what it holds or held (every upstream batch and the
entries on them), and nothing else. An invisible object answers exactly as a nonexistent one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ledger.models import LogRecord
from tests.api.support import CERT, assert_problem, bulk, hand_over, transform
from tests.conftest import Persona, World, new_batch_id

PERSONAS = ("recycler", "processor", "maker", "oem", "auditor", "outsider")


@dataclass
class Chain:
    batches: dict[str, str] = field(default_factory=dict)  # name -> batch id
    seqs: dict[str, int] = field(default_factory=dict)  # name -> seq of the entry
    key_seqs: dict[str, int] = field(default_factory=dict)  # persona -> key_registered seq


def _seq(receipt: dict[str, Any]) -> int:
    return int(receipt["seq"])


def build_chain(world: World) -> Chain:
    r, p, m, oem, out = world.recycler, world.processor, world.maker, world.oem, world.outsider
    c = Chain()
    for name in PERSONAS:
        persona = getattr(world, name)
        c.key_seqs[name] = LogRecord.objects.get(entry_type="key_registered", organisation=persona.org).seq
    b = c.batches
    for name in (
        "motors",
        "scrap",
        "steel",
        "idle",
        "powder",
        "residue",
        "primary",
        "alloy",
        "magnets",
        "swarf",
    ):
        b[name] = new_batch_id(name)
    b["out_raw"], b["out_part"] = new_batch_id("nosy-raw"), new_batch_id("nosy-part")

    def ok(persona: Persona, type_: str, **fields: Any) -> int:
        return _seq(persona.submit_ok(type_, **fields))

    c.seqs["r_intake_motors"] = ok(
        r, "intake", batch=b["motors"], material="eol_product", mass_g=100_000, origin="post_consumer"
    )
    c.seqs["r_intake_idle"] = ok(
        r, "intake", batch=b["idle"], material="eol_product", mass_g=500, origin="post_consumer"
    )
    c.seqs["r_dismantle"] = _seq(
        transform(
            r, [(b["motors"], 100_000)], [(b["scrap"], 3_000), (b["steel"], 96_000)], process="dismantling"
        )
    )
    c.seqs["r_write_off_steel"] = ok(r, "write_off", batch=b["steel"], mass_g=96_000, reason="disposal")
    c.seqs["r_ship_scrap"] = ok(r, "ship", batch=b["scrap"], mass_g=3_000, to_org=p.org.slug)
    c.seqs["p_receive_scrap"] = ok(p, "receive", batch=b["scrap"], mass_g=3_000)
    c.seqs["p_assay_scrap"] = ok(
        p,
        "assay",
        batch=b["scrap"],
        composition={"Nd": 230_000, "Dy": 20_000},
        lab="l",
        method="m",
        certificate_sha256=CERT,
    )
    c.seqs["p_hpms"] = _seq(
        transform(p, [(b["scrap"], 3_000)], [(b["powder"], 2_900), (b["residue"], 80)], process="hpms")
    )
    c.seqs["p_ship_powder"] = ok(p, "ship", batch=b["powder"], mass_g=2_900, to_org=m.org.slug)
    c.seqs["m_receive_powder"] = ok(m, "receive", batch=b["powder"], mass_g=2_900)
    c.seqs["m_intake_primary"] = ok(
        m,
        "intake",
        batch=b["primary"],
        material="alloy",
        mass_g=1_000,
        origin="primary",
        supplier="Mine Co",
        certificate_sha256=CERT,
        composition={"Nd": 300_000},
    )
    c.seqs["m_merge"] = _seq(
        transform(m, [(b["powder"], 2_900), (b["primary"], 1_000)], [(b["alloy"], 3_850)], process="alloying")
    )
    c.seqs["m_sinter"] = _seq(
        transform(m, [(b["alloy"], 3_850)], [(b["magnets"], 3_000), (b["swarf"], 800)], process="sintering")
    )
    c.seqs["m_write_off_swarf"] = ok(m, "write_off", batch=b["swarf"], mass_g=800, reason="other")
    c.seqs["m_ship_magnets"] = ok(m, "ship", batch=b["magnets"], mass_g=3_000, to_org=oem.org.slug)
    c.seqs["oem_receive_magnets"] = ok(oem, "receive", batch=b["magnets"], mass_g=3_000)
    # The outsider's own chain, untouched by anyone else.
    c.seqs["out_intake"] = ok(
        out, "intake", batch=b["out_raw"], material="magnet_scrap", mass_g=700, origin="pre_consumer"
    )
    c.seqs["out_split"] = _seq(transform(out, [(b["out_raw"], 700)], [(b["out_part"], 700)], process="split"))
    return c


def expected(c: Chain) -> dict[str, tuple[set[str], set[int]]]:
    """persona -> (batch names it sees, entry seqs it sees)."""
    s, k = c.seqs, c.key_seqs

    def entries(prefix: str, key: str) -> set[int]:
        return {seq for name, seq in s.items() if name.startswith(prefix)} | {k[key]}

    pedigree = {"magnets", "alloy", "powder", "primary", "scrap", "motors"}
    oem_entries = {
        s[n]
        for n in (
            "r_intake_motors",
            "r_dismantle",
            "r_ship_scrap",
            "p_receive_scrap",
            "p_assay_scrap",
            "p_hpms",
            "p_ship_powder",
            "m_receive_powder",
            "m_intake_primary",
            "m_merge",
            "m_sinter",
            "m_ship_magnets",
        )
    } | entries("oem_", "oem")
    return {
        "recycler": ({"motors", "idle", "scrap", "steel"}, entries("r_", "recycler")),
        "processor": ({"scrap", "powder", "residue"}, entries("p_", "processor")),
        "maker": ({"powder", "primary", "alloy", "magnets", "swarf"}, entries("m_", "maker")),
        "oem": (pedigree, oem_entries),
        "auditor": (set(c.batches), set(range(LogRecord.objects.count()))),
        "outsider": ({"out_raw", "out_part"}, entries("out_", "outsider")),
    }


def _all_pages(persona: Persona, url: str | None) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    while url:
        response = persona.client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        results += body["results"]
        url = body["next"] and (lambda u: f"{u.path}?{u.query}")(urlsplit(body["next"]))
    return results


@pytest.fixture
def chain(world: World) -> Chain:
    return build_chain(world)


@pytest.mark.parametrize("who", PERSONAS)
def test_each_persona_lists_exactly_its_batches_and_entries(world: World, chain: Chain, who: str) -> None:
    persona: Persona = getattr(world, who)
    batch_names, seqs = expected(chain)[who]
    by_id = {v: n for n, v in chain.batches.items()}

    listed_batches = _all_pages(persona, "/api/v1/batches/?limit=3")
    assert {by_id[x["id"]] for x in listed_batches} == batch_names
    assert len(listed_batches) == len(batch_names)  # no duplicates

    listed_entries = _all_pages(persona, "/api/v1/entries/?limit=4")
    assert [x["seq"] for x in listed_entries] == sorted(seqs)


@pytest.mark.parametrize("who", PERSONAS)
def test_each_persona_reads_exactly_the_details_it_may_see(world: World, chain: Chain, who: str) -> None:
    persona: Persona = getattr(world, who)
    batch_names, seqs = expected(chain)[who]
    absent_batch = persona.client.get("/api/v1/batches/never-was-a-batch/")
    absent_entry = persona.client.get("/api/v1/entries/999999/")
    not_found = assert_problem(absent_batch, 404, "not-found", None)
    assert absent_entry.json() == not_found

    for name, batch_id in chain.batches.items():
        response = persona.client.get(f"/api/v1/batches/{batch_id}/")
        if name in batch_names:
            assert response.status_code == 200, (who, name)
            assert response.json()["id"] == batch_id
        else:
            assert response.status_code == 404, (who, name)
            assert response["Content-Type"] == absent_batch["Content-Type"]
            assert response.json() == not_found, (who, name)

    for seq in range(LogRecord.objects.count()):
        response = persona.client.get(f"/api/v1/entries/{seq}/")
        if seq in seqs:
            assert response.status_code == 200, (who, seq)
        else:
            assert response.status_code == 404, (who, seq)
            assert response.json() == not_found, (who, seq)


@pytest.mark.parametrize("who", ["recycler", "oem", "outsider"])
def test_filters_cannot_reach_past_visibility(world: World, chain: Chain, who: str) -> None:
    persona: Persona = getattr(world, who)
    batch_names, seqs = expected(chain)[who]
    for name, batch_id in chain.batches.items():
        got = _all_pages(persona, f"/api/v1/entries/?batch={batch_id}")
        assert {x["seq"] for x in got} <= seqs, (who, name)
        if name in ("out_raw", "out_part") and who != "outsider":
            assert got == []
    for other in world.all():
        got = _all_pages(persona, f"/api/v1/batches/?custodian={other.org.slug}")
        assert {x["id"] for x in got} <= {chain.batches[n] for n in batch_names}


def test_the_oem_sees_nothing_of_the_outsider_and_no_side_branch(world: World, chain: Chain) -> None:
    oem = world.oem
    entries = _all_pages(oem, "/api/v1/entries/")
    mentioned = {x["record"]["envelope"]["payload"].get("batch") for x in entries}
    assert chain.batches["out_raw"] not in mentioned
    assert chain.batches["steel"] not in mentioned  # its write-off is the recycler's business
    assert {x["org"] for x in entries} == {"evtb", "hpms", "magm", "motorwerk"}


@pytest.mark.parametrize("who", PERSONAS)
def test_keys_are_visible_to_their_organisation_and_the_auditor(world: World, who: str) -> None:
    persona: Persona = getattr(world, who)
    own = {p.sign(p.payload("intake"))["key_id"]: p for p in world.all()}
    listed = _all_pages(persona, "/api/v1/keys/")
    if who == "auditor":
        assert {k["key_id"] for k in listed} == set(own)
    else:
        assert [k["key_id"] for k in listed] == [persona.sign(persona.payload("intake"))["key_id"]]
    not_found = persona.client.get("/api/v1/keys/" + "0" * 64 + "/").json()
    for key_id, owner in own.items():
        response = persona.client.get(f"/api/v1/keys/{key_id}/")
        if who == "auditor" or owner is persona:
            assert response.status_code == 200 and response.json()["org"] == owner.org.slug
        else:
            assert response.status_code == 404
            assert response.json() == not_found


# -- query counts: a page of 100 costs a bounded number of queries, whatever it holds ------


def _many(world: World, n: int = 110) -> None:
    r, m, oem = world.recycler, world.maker, world.oem
    envelopes = [
        r.sign(
            r.payload(
                "intake", batch=new_batch_id("evtb"), material="swarf", mass_g=10, origin="pre_consumer"
            )
        )
        for _ in range(n)
    ]
    assert bulk(r, envelopes).status_code == 201
    # An OEM whose pedigree is wide: one lot merged from many upstream batches.
    sources = [new_batch_id("magm-src") for _ in range(n)]
    mk = [
        m.sign(
            m.payload(
                "intake",
                batch=b,
                material="alloy",
                mass_g=10,
                origin="primary",
                supplier="s",
                certificate_sha256=CERT,
            )
        )
        for b in sources
    ]
    assert bulk(m, mk).status_code == 201
    lot = new_batch_id("magm-lot")
    transform(m, [(b, 10) for b in sources], [(lot, 10 * n)], process="merge")
    hand_over(m, oem, lot, 10 * n)


# Whatever the endpoints add to a page (prefetches, flags), the cost is per page, not per row.
MAX_QUERIES_PER_PAGE = 8


@pytest.mark.parametrize("who", ["recycler", "oem", "auditor"])
@pytest.mark.parametrize("path", ["/api/v1/entries/", "/api/v1/batches/"])
def test_list_pages_of_a_hundred_take_a_bounded_number_of_queries(
    world: World, who: str, path: str, django_assert_max_num_queries: Any
) -> None:
    _many(world)
    persona: Persona = getattr(world, who)
    persona.client.get(path)  # the token's last_used_at is written on first use only
    with CaptureQueriesContext(connection) as small:
        response = persona.client.get(f"{path}?limit=10")
    assert len(response.json()["results"]) == 10
    with django_assert_max_num_queries(MAX_QUERIES_PER_PAGE) as large:
        response = persona.client.get(path)
    assert len(response.json()["results"]) == 100
    assert len(large) == len(small), "a page of 100 costs more queries than a page of 10 (N+1)"


def test_a_batch_filtered_entry_list_takes_a_bounded_number_of_queries(
    world: World, django_assert_max_num_queries: Any
) -> None:
    _many(world)
    oem = world.oem
    lot = _all_pages(oem, "/api/v1/batches/?custodian=motorwerk")[0]["id"]
    oem.client.get("/api/v1/entries/")
    with django_assert_max_num_queries(MAX_QUERIES_PER_PAGE):
        response = oem.client.get(f"/api/v1/entries/?batch={lot}")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 3  # merge, ship, receive
