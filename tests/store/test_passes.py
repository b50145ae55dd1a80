"""The visitor_passes repository on each store backend: issue, list per unit, revoke, and the atomic
use that lets exactly one of several racing gates take the last entry."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from schemas.base import new_id
from schemas.visitor import PassStatus
from store.passes import UseOutcome, VisitorPass, VisitorPassStore
from store.repository import Store

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def _pass(unit: str = "1203", max_uses: int = 1, until: timedelta = timedelta(hours=4), **kw: object) -> VisitorPass:
    data: dict[str, object] = dict(id=new_id(), request_id=new_id(), resident_id="U1", building="A", unit=unit,
                                   visitor_name="Park", valid_from=NOW, valid_until=NOW + until,
                                   gate_ids=["lobby", "garage"], max_uses=max_uses, key_id="0badc0de", created_at=NOW)
    data.update(kw)
    return VisitorPass.model_validate(data)


@pytest.fixture
def passes(store: Store) -> VisitorPassStore:
    repo = VisitorPassStore(store.db)
    repo.ensure_indexes()
    return repo


def test_insert_get_and_one_pass_per_request(passes: VisitorPassStore) -> None:
    vp = _pass()
    assert passes.insert(vp)
    assert passes.get(vp.id) == vp
    assert passes.by_request(vp.request_id) == vp
    assert not passes.insert(_pass(request_id=vp.request_id))  # same request: refused by the unique index
    assert passes.get("nope") is None


def test_list_and_count_live_per_unit(passes: VisitorPassStore) -> None:
    mine = [_pass(created_at=NOW + timedelta(minutes=i)) for i in range(3)]
    for vp in [*mine, _pass(unit="0801")]:
        passes.insert(vp)
    listed = passes.list_unit("A", "1203")
    assert [p.id for p in listed] == [p.id for p in reversed(mine)]  # newest first, own unit only
    assert passes.count_live("A", "1203", NOW) == 3
    passes.revoke(mine[0].id, NOW)
    passes.use(mine[1].id, "lobby", "r1", NOW)  # its only entry
    assert passes.count_live("A", "1203", NOW) == 1
    assert passes.count_live("A", "1203", NOW + timedelta(hours=5)) == 0  # expired


def test_use_counts_down_and_says_why_it_refuses(passes: VisitorPassStore) -> None:
    vp = _pass(max_uses=2)
    passes.insert(vp)
    first = passes.use(vp.id, "lobby", "r1", NOW)
    assert first.outcome is UseOutcome.ADMITTED and first.visitor_pass is not None
    assert first.visitor_pass.uses == 1 and first.visitor_pass.last_used_gate == "lobby"
    # The same request again (a gate's retry, perhaps at another worker) is admitted, counted once.
    again = passes.use(vp.id, "lobby", "r1", NOW)
    assert again.outcome is UseOutcome.REPEATED and again.visitor_pass is not None and again.visitor_pass.uses == 1
    assert passes.use(vp.id, "garage", "r2", NOW).outcome is UseOutcome.ADMITTED
    assert passes.use(vp.id, "lobby", "r3", NOW).outcome is UseOutcome.USED_UP
    stored = passes.get(vp.id)
    assert stored is not None and stored.uses == 2 and stored.status_at(NOW) is PassStatus.USED_UP
    assert passes.use("missing", "lobby", "r4", NOW).outcome is UseOutcome.NOT_FOUND


def test_revoked_pass_is_never_used(passes: VisitorPassStore) -> None:
    vp = _pass(max_uses=5)
    passes.insert(vp)
    revoked = passes.revoke(vp.id, NOW)
    assert revoked is not None and revoked.status is PassStatus.REVOKED and revoked.revoked_at == NOW
    assert passes.revoke(vp.id, NOW + timedelta(hours=1)) == revoked  # idempotent, first time kept
    assert passes.use(vp.id, "lobby", "r1", NOW).outcome is UseOutcome.REVOKED
    stored = passes.get(vp.id)
    assert stored is not None and stored.uses == 0
    assert passes.revoke("missing", NOW) is None


def test_release_gives_a_use_back(passes: VisitorPassStore) -> None:
    vp = _pass(max_uses=1)
    passes.insert(vp)
    assert passes.use(vp.id, "lobby", "r1", NOW).outcome is UseOutcome.ADMITTED
    assert passes.release(vp.id, "lobby", "r1")
    assert not passes.release(vp.id, "lobby", "r1")  # only once
    assert passes.use(vp.id, "lobby", "r2", NOW).outcome is UseOutcome.ADMITTED


def _race(store: Store, pass_id: str, gates: int) -> list[UseOutcome]:
    """`gates` threads, each on its own connection as separate workers would be, released together."""
    from pymongo import MongoClient

    host, port = next(iter(store.db.client.nodes))
    outcomes: list[UseOutcome] = []
    barrier = threading.Barrier(gates)

    def gate(i: int) -> None:
        client: MongoClient[dict[str, object]] = MongoClient(host, port, directConnection=True, tz_aware=True)
        try:
            repo = VisitorPassStore(client[store.db.name])
            barrier.wait()
            outcomes.append(repo.use(pass_id, f"gate-{i}", f"race-{i}", NOW).outcome)
        finally:
            client.close()

    threads = [threading.Thread(target=gate, args=(i,)) for i in range(gates)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_racing_gates_take_the_last_use_exactly_once(store: Store, passes: VisitorPassStore) -> None:
    for round_ in range(8):
        vp = _pass(max_uses=2)
        passes.insert(vp)
        passes.use(vp.id, "lobby", f"warm-{round_}", NOW)  # one use left
        outcomes = _race(store, vp.id, 4)
        assert sorted(outcomes) == sorted([UseOutcome.ADMITTED] + [UseOutcome.USED_UP] * 3), outcomes
        stored = passes.get(vp.id)
        assert stored is not None and stored.uses == 2


def test_offline_passes_per_gate(passes: VisitorPassStore) -> None:
    live, spent, gone = _pass(max_uses=3), _pass(max_uses=1), _pass()
    other = _pass(gate_ids=["pool"])
    for vp in (live, spent, gone, other):
        passes.insert(vp)
    passes.use(live.id, "lobby", "r1", NOW)
    passes.use(spent.id, "lobby", "r2", NOW)
    passes.revoke(gone.id, NOW)
    per_gate = passes.offline_passes(NOW)
    assert {p.pass_id: p.uses_left for p in per_gate["lobby"]} == {live.id: 2}
    assert [p.pass_id for p in per_gate["pool"]] == [other.id]
    assert passes.offline_passes(NOW + timedelta(days=1)) == {}
