"""A worker's prefix cache: an LRU of KV block ids, optionally kept in a fleet-wide holders index."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from typing import Any


class PrefixCache:
    """LRU set of block ids with a fixed capacity (in blocks).

    Touching or inserting a request's ids walks them last to first, so its
    leading (most shareable) blocks end up most recently used and a request's
    tail is evicted before its head.

    ``index`` (shared by the caches of a big fleet's prefill workers) maps
    every block id held by any of them to a bit mask of the holders: this cache
    sets ``bit`` on the blocks it gains and clears it on the blocks it evicts,
    so the kv-aware router need not ask every worker for its leading hits.

    Block ids are typed ``Any``: a compiled build (``replaylib.native``) then
    keeps them the Python ints they are, instead of unboxing each one and
    boxing it again for every dict operation.
    """

    __slots__ = ("lru", "capacity", "inserts", "_index", "_bit", "_others", "_held", "_held_n")

    def __init__(self, capacity_blocks: int, index: dict[Any, int] | None = None, bit: int = 0) -> None:
        self.capacity = capacity_blocks
        # The held ids (read only), least recently used first once a held touch is applied (``touch``; a walk of
        # the cache applies it): a dict keeps insertion order, and moving an id to the most recently used end is
        # taking it out and putting it back.
        self.lru: dict[Any, None] = {}
        self.inserts = 0  # insert calls so far: only an insert changes what the cache holds
        # The index's masks are handled as the objects they are (``Any``): a compiled build then neither boxes
        # the bit again for every block nor compares masks as ints, and a block only this cache holds maps to
        # this very ``_bit`` object (an identity test).  ``_others``: the mask that clears the bit.
        self._index: dict[Any, Any] | None = index
        self._bit: Any = bit
        self._others: Any = ~bit
        # The last touch, not yet applied to the LRU order (``touch``): its ids (None: none held) and how many.
        self._held: Sequence[Any] | None = None
        self._held_n = 0

    def __len__(self) -> int:
        return len(self.lru)

    def __contains__(self, block: int) -> bool:
        return block in self.lru

    def __iter__(self):  # noqa: ANN204 - the held ids, least recently used first
        if self._held is not None:
            self._apply_held()
        return iter(self.lru)

    def leading_hits(self, hash_ids: Sequence[Any]) -> int:
        """How many leading ids of ``hash_ids`` are cached (does not touch the LRU)."""
        lru = self.lru
        n = 0
        for h in hash_ids:
            if h not in lru:
                break
            n += 1
        return n

    def touch(self, hash_ids: Sequence[Any], n: int) -> None:
        """Mark the first ``n`` ids (all cached) most recently used, last to first.

        Only an eviction (``insert``) and a walk of the cache (``__iter__``) see the order, so the last touch
        is held until the next touch, insert or walk, and applied then, in its turn: what the cache holds
        does not change meanwhile.  A touch held until an insert of the very same ids is dropped: the insert
        moves each of them again before it evicts, which leaves every block where the touch and the insert
        would have (a pass's request touches its hits at the pass's start and inserts its ids at its end;
        on a fleet with workers to spare, no other request comes between)."""
        if self._held is not None:
            self._apply_held()
        if n:
            self._held = hash_ids
            self._held_n = n

    def _apply_held(self) -> None:
        """Apply the touch held (``touch``)."""
        ids = self._held
        assert ids is not None
        self._held = None
        lru = self.lru
        for h in reversed(ids[:self._held_n]):
            del lru[h]
            lru[h] = None  # moved to the most recently used end

    def insert(self, hash_ids: Sequence[Any]) -> None:
        """Insert/refresh all ids (last to first), then evict down to capacity."""
        self.inserts += 1
        touched = self._held
        if touched is not None:
            if touched is hash_ids:
                self._held = None  # moved again below
            else:
                self._apply_held()
        lru = self.lru
        index = self._index
        if index is None:
            for h in reversed(hash_ids):
                if h in lru:
                    del lru[h]
                lru[h] = None
        else:
            bit = self._bit
            for h in reversed(hash_ids):
                if h in lru:
                    del lru[h]
                else:
                    # Most blocks are new to the index: one setdefault puts them in; a block other caches
                    # hold (never this one: it is not in this cache) gains this cache's bit.
                    held = index.setdefault(h, bit)
                    if held is not bit:
                        index[h] = held | bit
                lru[h] = None
        excess = len(lru) - self.capacity
        if excess > 0:
            victims = list(islice(lru, excess))  # the least recently used
            if index is None:
                for h in victims:
                    del lru[h]
            else:
                bit = self._bit
                others = self._others
                pop = index.pop  # one lookup takes the block out and gives its mask (a bound method: called natively)
                for h in victims:
                    del lru[h]
                    held = pop(h)
                    if held is not bit and held != bit:  # others hold it too (the only holder: most blocks)
                        index[h] = held & others

    def attach(self, index: dict[Any, int]) -> None:
        """Join the holders ``index``: set this cache's bit on every block it holds."""
        bit = self._bit
        for h in self.lru:
            index[h] = index.get(h, 0) | bit
        self._index = index

    def detach(self) -> None:
        """Leave the holders index (the worker is gone): clear this cache's bit on every block it holds."""
        index = self._index
        if index is None:
            return
        bit = self._bit
        others = self._others
        for h in self.lru:
            held = index[h]
            if held is bit or held == bit:
                del index[h]
            else:
                index[h] = held & others
        self._index = None
