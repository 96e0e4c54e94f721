"""The fleet's ranked mode (big fleets, ``replaylib.sim.fleet.RANKED_FROM_WORKERS``): the load rankings,
the candidate bit masks and the holders index of the prefill caches must always agree with the workers
they describe, and routing and decode placement must choose exactly the worker a brute-force scan
chooses (checked at every pick, in ranked mode and in the scan mode of small fleets, whose scans skip
the workers that cannot win).

Every check runs on random fleets with ranked mode forced on from the first worker, with random
scaling (starting and draining workers), node losses and cap changes, small prefix caches (so blocks
are evicted all the time) and prefix-chained block ids (so holders share their first blocks at
several depths), for each router.
"""

from __future__ import annotations

import random
from collections import OrderedDict

import pytest

from replaylib.sim import fleet as fleet_mod
from replaylib import native
from replaylib.sim.fleet import DECODE, PREFILL, Fleet
from replaylib.sim.prefix_cache import PrefixCache
from sim_helpers import fleet_config, req, tiny_system

BLOCK = 16


def random_trace(rng: random.Random, n: int) -> list:
    """Conversations over a few shared system prompts: each turn re-sends its history plus new blocks."""
    prompts = [[rng.randrange(50) for _ in range(rng.randint(0, 4))] for _ in range(5)]
    history: dict[int, list[int]] = {}
    fresh = 1000
    rows = []
    t = 0.0
    for _ in range(n):
        t += rng.expovariate(1 / 15.0)
        conv = rng.randrange(25)
        ids = history.setdefault(conv, list(rng.choice(prompts)))
        new = rng.randint(0, 5)
        ids = history[conv] = ids + list(range(fresh, fresh + new))
        fresh += new
        row_ids = list(ids)
        if rng.random() < 0.05:
            row_ids += row_ids[:2]  # a repeated block
        if rng.random() < 0.05:
            row_ids = []
        isl = max(1, len(row_ids) * BLOCK - rng.randrange(BLOCK)) if row_ids else rng.randint(1, 200)
        if rng.random() < 0.1:
            isl = max(1, isl // 3)  # fewer tokens than the blocks cover: the overlap is capped at isl
        rows.append(req(round(t, 3), isl, rng.choice([1, 2, 5, 20, 60]), row_ids))
    return rows


def random_script(rng: random.Random, horizon: float) -> dict[float, tuple]:
    script: dict[float, tuple] = {}
    for _ in range(12):
        at = round(rng.uniform(0, horizon), 1)
        kind = rng.choice(["scale", "scale", "fail", "caps"])
        if kind == "scale":
            script[at] = ("scale", rng.randint(1, 45), rng.randint(1, 45))
        elif kind == "fail":
            script[at] = ("fail", rng.choice([PREFILL, DECODE]), rng.randint(0, 6))
        else:
            script[at] = ("caps", rng.uniform(300, 700), rng.uniform(300, 700))
    return script


def scan_prefill(fleet: Fleet, r) -> object:  # noqa: ANN001 - brute force over every candidate, as docs/fleet_model.md says
    cands = fleet._prefill_candidates()
    if not cands:
        return None
    if fleet._router == "round_robin":
        return cands[fleet._rr[PREFILL] % len(cands)]
    ids, isl = r.hash_ids or (), r.isl
    use_cache = fleet._router == "kv_aware" and fleet._prefix_cache

    def cost(c) -> tuple[int, int]:  # noqa: ANN001
        overlap = min(c.cache.leading_hits(ids) * fleet.block_size, isl) if use_cache else 0
        return (c.queued_tokens + isl - overlap, c.id)

    return min(cands, key=cost)


def scan_decode(fleet: Fleet, t: float) -> object:
    cands = fleet._decode_candidates()
    if not cands:
        return None
    return min(cands, key=lambda c: (c.used + (c.steps_by(t) * c.seg_b if c.seg else 0) + c.waiting_ctx, c.id))


class CheckedFleet(Fleet):
    """Asserts at every routing and placement that the worker chosen is the brute-force scan's."""

    checked = 0

    def _route_prefill(self, r) -> None:  # noqa: ANN001
        want = scan_prefill(self, r)
        super()._route_prefill(r)
        if want is not None:
            assert want.queue and want.queue[-1] is r, f"request {r.index} routed elsewhere than to worker {want.id}"
            CheckedFleet.checked += 1

    def _place_decode(self, r, t: float, *, after_schedule: bool = False) -> None:  # noqa: ANN001
        want = scan_decode(self, t)
        super()._place_decode(r, t, after_schedule=after_schedule)
        if want is not None:
            assert want.waiting and want.waiting[-1] is r, f"request {r.index} placed elsewhere than on worker {want.id}"
            CheckedFleet.checked += 1


def check_structures(fleet: Fleet) -> None:
    """Rankings, candidate masks and holders index against the workers themselves (the rankings once the
    workers whose load changed since they were ranked are re-ranked, as the next routing or placement does)."""
    assert fleet._ranked_mode
    assert all(w.stale for w in fleet._stale_p) and all(d.stale for d in fleet._stale_d)
    assert len(set(map(id, fleet._stale_p))) == len(fleet._stale_p), "a worker listed twice to re-rank"
    assert not any(w.stale for w in (*fleet._prefill, *fleet._decode) if w not in fleet._stale_p + fleet._stale_d)
    fleet._rerank_prefill()
    fleet._rerank_decode()
    for (role, state), ranking in fleet._ranked.items():
        pool = fleet._prefill if role == PREFILL else fleet._decode
        members = [w for w in pool if w.state == state]
        loads = [(w.queued_tokens if role == PREFILL else w.used + w.waiting_ctx, w.id) for w in members]
        entries = ranking.entries()
        assert [(key >> fleet_mod._ID_BITS, key & fleet_mod._ID_MASK) for key in entries] == sorted(loads)
        assert ranking.idle == sorted(-key for key in entries if key >> fleet_mod._ID_BITS == 0)
        assert all(w.rank == key and w.ranking is ranking for key in entries for w in [fleet._by_id[key & fleet_mod._ID_MASK]])
        if role == PREFILL:
            assert fleet._prefill_bits[state] == sum(1 << w.slot for w in members)
    live = {w.id: w for w in (*fleet._prefill, *fleet._decode)}
    assert fleet._by_id == [live.get(wid) for wid in range(len(fleet._by_id))]
    assert len({w.slot for w in fleet._prefill}) == len(fleet._prefill)
    assert all(fleet._slots[w.slot] is w for w in fleet._prefill)
    if fleet._holders is not None:
        want: dict[int, int] = {}
        for w in fleet._prefill:
            for h in w.cache:
                want[h] = want.get(h, 0) | 1 << w.slot
        assert fleet._holders == want


def replay(cls: type, system, config, rows, script, *, check: bool = False) -> tuple:  # noqa: ANN001
    outs: dict = {}
    fleet = cls(system, config, rows, block_size=BLOCK, on_finish=lambda o: outs.__setitem__(o.index, o))
    snaps = []
    t = 0.0
    times = sorted(script)
    while True:
        t += 25.0
        for at in [a for a in times if a <= t]:
            times.remove(at)
            snaps.append(fleet.advance_to(at))
            action = script[at]
            if action[0] == "scale":
                fleet.apply_scaling(action[1], action[2])
            elif action[0] == "fail":
                fleet.fail_workers(action[1], action[2])
            else:
                fleet.apply_caps(action[1], action[2])
            if check:
                check_structures(fleet)
        snaps.append(fleet.advance_to(t))
        if check:
            check_structures(fleet)
        if snaps[-1].done and not times:
            return outs, snaps, fleet.outcomes_in_flight()


def random_case(seed: int, router: str) -> tuple:
    """A random fleet of up to 40 + 40 workers, its trace and its script (scaling, node losses, caps)."""
    rng = random.Random(seed)
    rows = random_trace(rng, 400)
    script = random_script(rng, rows[-1].timestamp)
    system = tiny_system(kv_tokens=rng.choice([1500, 3000, 6000]), startup_ms=rng.choice([0.0, 40.0, 300.0]))
    config = fleet_config(prefill_workers=rng.randint(1, 40), decode_workers=rng.randint(1, 40), router=router,
                          prefix_cache=rng.random() < 0.85, max_num_seqs=rng.choice([4, 64]),
                          max_num_batched_tokens=rng.choice([64, 512]))
    return system, config, rows, script


CASES = [(seed, router, 8) for seed in range(6) for router in ("kv_aware", "least_loaded", "round_robin")]
CASES += [(seed, "kv_aware", small) for seed in range(6, 10) for small in (0, 1)]  # groups found by the walk


@pytest.mark.skipif(native.BUILD == native.COMPILED, reason="checks the pure-Python fleet from a subclass, which a compiled "
                    "Fleet does not allow; tests/test_native.py replays these fleets with both builds and compares")
@pytest.mark.parametrize(("seed", "router", "small_group"), CASES)
def test_ranked_mode_chooses_what_the_scans_choose(seed: int, router: str, small_group: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    system, config, rows, script = random_case(seed, router)
    monkeypatch.setattr(fleet_mod, "RANKED_FROM_WORKERS", 1)
    monkeypatch.setattr(fleet_mod, "SMALL_GROUP", small_group)
    CheckedFleet.checked = 0
    ranked = replay(CheckedFleet, system, config, rows, script, check=True)
    assert CheckedFleet.checked > 400  # every request routed and (unless osl 1 or dropped) placed, checked
    monkeypatch.setattr(fleet_mod, "RANKED_FROM_WORKERS", 10**9)  # the scans, with their own shortcuts, checked too
    CheckedFleet.checked = 0
    scanned = replay(CheckedFleet, system, config, rows, script)
    assert CheckedFleet.checked > 400
    assert ranked == scanned  # every outcome and every snapshot


@pytest.mark.skipif(native.BUILD == native.COMPILED, reason="checks the pure-Python fleet from a subclass (as above)")
@pytest.mark.parametrize("router", ["kv_aware", "least_loaded"])
def test_with_no_active_worker_the_starting_ones_take_the_work(router: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every worker of both roles lost, then replaced: until the new ones are ready, routing and placement
    read the starting workers' rankings, and choose what the scans choose."""
    rng = random.Random(7)
    rows = random_trace(rng, 200)
    system = tiny_system(kv_tokens=3000, startup_ms=300.0)
    config = fleet_config(prefill_workers=3, decode_workers=3, router=router)
    lost = round(rows[len(rows) // 3].timestamp, 1)
    script = {lost: ("fail", PREFILL, 3), lost + 0.1: ("fail", DECODE, 3), lost + 0.2: ("scale", 4, 4)}
    monkeypatch.setattr(fleet_mod, "RANKED_FROM_WORKERS", 1)
    CheckedFleet.checked = 0
    ranked = replay(CheckedFleet, system, config, rows, script, check=True)
    during = [r for r in rows if lost + 0.2 < r.timestamp < lost + 300.0]
    assert during, "no request arrives while the new workers start"
    assert CheckedFleet.checked > 200
    monkeypatch.setattr(fleet_mod, "RANKED_FROM_WORKERS", 10**9)
    assert ranked == replay(CheckedFleet, system, config, rows, script)


def test_ranked_mode_starts_at_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleet_mod, "RANKED_FROM_WORKERS", 6)
    rows = random_trace(random.Random(7), 50)
    fleet = Fleet(tiny_system(kv_tokens=3000), fleet_config(prefill_workers=2, decode_workers=2, router="kv_aware"),
                  rows, block_size=BLOCK)
    fleet.advance_to(300.0)
    assert not fleet._ranked_mode and fleet._holders is None
    fleet.apply_scaling(4, 2)  # the sixth worker: every worker ranked, every cache indexed as it stands
    assert fleet._ranked_mode
    check_structures(fleet)
    assert fleet._holders  # the first two caches held blocks already
    fleet.advance_to(1e9)
    check_structures(fleet)


def naive_insert(lru: OrderedDict, ids: list[int], capacity: int) -> None:
    for h in reversed(ids):
        if h in lru:
            lru.move_to_end(h)
        else:
            lru[h] = None
    while len(lru) > capacity:
        lru.popitem(last=False)


@pytest.mark.parametrize("seed", range(5))
def test_prefix_cache_insert_and_index_match_the_walk(seed: int) -> None:
    """Inserts, touches and the holders index against an OrderedDict walk of each cache, touches applied at
    once.  A cache holds its last touch until the next touch, insert or walk, and drops it when the insert is
    of the very ids touched (a pass's request): half the inserts here are of the list last touched, and the
    order is compared only after inserts (a walk applies the touch held), so those touches are dropped."""
    rng = random.Random(seed)
    index: dict[int, int] = {}
    caches = [PrefixCache(rng.randint(0, 30), index, 1 << slot) for slot in range(3)]
    naive = [OrderedDict() for _ in caches]
    touched: list[list[int] | None] = [None] * len(caches)  # the ids each cache touched last
    for _ in range(400):
        i = rng.randrange(3)
        last = touched[i]
        if last is not None and rng.random() < 0.5:
            ids = last  # the same list object
        else:
            ids = [rng.randrange(60) for _ in range(rng.randint(0, 12))]  # duplicates included
        if rng.random() < 0.4 and len(caches[i]):
            n = caches[i].leading_hits(ids)
            caches[i].touch(ids, n)
            touched[i] = ids
            for h in reversed(ids[:n]):
                naive[i].move_to_end(h)
            assert set(caches[i].lru) == set(naive[i])  # a touch never changes what is held
        else:
            caches[i].insert(ids)
            naive_insert(naive[i], ids, caches[i].capacity)
            assert list(caches[i]) == list(naive[i])  # the same blocks in the same LRU order
        want: dict[int, int] = {}
        for slot, o in enumerate(naive):
            for h in o:
                want[h] = want.get(h, 0) | 1 << slot
        assert index == want
    assert [list(c) for c in caches] == [list(o) for o in naive]
    caches[1].detach()
    assert all(not m & 2 for m in index.values())
    caches[1].attach(index)
    assert index == want


@pytest.mark.parametrize("seed", range(3))
def test_rank_index_is_bisect_left(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ranking search a compiled build runs (pure Python calls bisect; here forced onto the typed loop)."""
    import bisect

    if native.BUILD != native.COMPILED:
        monkeypatch.setattr(fleet_mod, "_COMPILED", True)
    rng = random.Random(seed)
    for n in (0, 1, 2, 3, 7, 8, 64, 257):
        for low, high in ((0, 1 << 50), (-(1 << 20), 0)):  # loaded entries; idle ones (negated ids)
            ranking = sorted(rng.randrange(low, high) for _ in range(n))
            if n:
                ranking[n // 3:n // 2] = [ranking[n // 3]] * (n // 2 - n // 3)  # runs of equal entries
            probes = [*ranking, low - 1, low, 0, high + 1, *(rng.randrange(low, high) for _ in range(20))]
            assert [fleet_mod._rank_index(ranking, k) for k in probes] == [bisect.bisect_left(ranking, k) for k in probes]


@pytest.mark.parametrize("seed", range(3))
def test_a_ranking_keeps_its_entries_in_order(seed: int) -> None:
    """_Ranking's add/remove against a sorted list: idle entries (load 0) and loaded ones, moved at random."""
    rng = random.Random(seed)
    ranking = fleet_mod._Ranking()
    model: list[int] = []
    loads = {wid: 0 for wid in range(40)}
    for wid in loads:
        ranking.add(wid)
        model.append(wid)
    for _ in range(2000):
        wid = rng.randrange(40)
        old = loads[wid] << fleet_mod._ID_BITS | wid
        loads[wid] = 0 if rng.random() < 0.5 else rng.randrange(1, 50)
        new = loads[wid] << fleet_mod._ID_BITS | wid
        ranking.remove(old)
        ranking.add(new)
        model.remove(old)
        model.append(new)
        model.sort()
        assert ranking.entries() == model and ranking.first() == model[0] and len(ranking) == len(model)
        assert ranking.idle == sorted(-k for k in model if k <= fleet_mod._ID_MASK)


@pytest.mark.parametrize("seed", range(3))
def test_the_event_heap_pops_what_heapq_pops(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The event heap's own sift (a compiled build's; here forced onto it in pure Python) against heapq:
    the same heap, item for item, after every push and pop."""
    import heapq

    if native.BUILD != native.COMPILED:
        monkeypatch.setattr(fleet_mod, "_COMPILED", True)
    rng = random.Random(seed)
    ours: list[tuple] = []
    theirs: list[tuple] = []
    payload = object()
    for step in range(3000):
        if not ours or rng.random() < 0.55:
            t = float(rng.randrange(50)) if rng.random() < 0.7 else rng.randrange(50)  # ties, and int times
            item = (t, rng.randrange(4), rng.randrange(5), step, payload)
            fleet_mod._push_event(ours, item)
            heapq.heappush(theirs, item)
        else:
            assert fleet_mod._pop_event(ours) == heapq.heappop(theirs)
        assert ours == theirs
