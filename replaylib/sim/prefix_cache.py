"""A worker's prefix cache: an LRU of KV block ids, optionally kept in a fleet-wide holders index."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


class PrefixCache:
    """LRU set of block ids with a fixed capacity (in blocks).

    Touching or inserting a request's ids walks them last to first, so its
    leading (most shareable) blocks end up most recently used and a request's
    tail is evicted before its head.

    ``index`` (shared by the caches of a fleet's prefill workers) maps every
    block id held by any of them to a bit mask of the holders: this cache sets
    ``bit`` on the blocks it gains and clears it on the blocks it evicts, so the
    kv-aware router only looks at workers that hold a request's first block.
    """

    __slots__ = ("_lru", "capacity", "_index", "_bit")

    def __init__(self, capacity_blocks: int, index: dict[int, int] | None = None, bit: int = 0) -> None:
        self.capacity = capacity_blocks
        self._lru: OrderedDict[int, None] = OrderedDict()
        self._index = index
        self._bit = bit

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, block: int) -> bool:
        return block in self._lru

    def __iter__(self):  # noqa: ANN204 - the held ids, least recently used first
        return iter(self._lru)

    def leading_hits(self, hash_ids: Sequence[int]) -> int:
        """How many leading ids of ``hash_ids`` are cached (does not touch the LRU)."""
        lru = self._lru
        n = 0
        for h in hash_ids:
            if h not in lru:
                break
            n += 1
        return n

    def touch(self, hash_ids: Sequence[int], n: int) -> None:
        """Mark the first ``n`` ids (all cached) most recently used, last to first."""
        move = self._lru.move_to_end
        for h in reversed(hash_ids[:n]):
            move(h)

    def insert(self, hash_ids: Sequence[int]) -> None:
        """Insert/refresh all ids (last to first), then evict down to capacity.

        Walking the ids last to first and moving each to the most recently used
        end leaves them, oldest first, in the reverse order of their first
        occurrence: that is what is built here in one go (held ones are taken
        out first), whatever the duplicates.
        """
        lru = self._lru
        first = dict.fromkeys(hash_ids)  # each id once, in the order of its first occurrence
        held = lru.keys() & first
        for h in held:
            del lru[h]
        lru.update(dict.fromkeys(reversed(first)))
        index = self._index
        if index is not None:
            bit = self._bit
            get = index.get
            for h in first.keys() - held if held else first:
                index[h] = get(h, 0) | bit
        excess = len(lru) - self.capacity
        if excess > 0:
            pop = lru.popitem
            if index is None:
                for _ in range(excess):
                    pop(False)
            else:
                keep = ~self._bit
                for _ in range(excess):
                    h = pop(False)[0]
                    m = index[h] & keep
                    if m:
                        index[h] = m
                    else:
                        del index[h]

    def attach(self, index: dict[int, int]) -> None:
        """Join the holders ``index``: set this cache's bit on every block it holds."""
        bit = self._bit
        get = index.get
        for h in self._lru:
            index[h] = get(h, 0) | bit
        self._index = index

    def detach(self) -> None:
        """Leave the holders index (the worker is gone): clear this cache's bit on every block it holds."""
        index = self._index
        if index is None:
            return
        keep = ~self._bit
        for h in self._lru:
            m = index[h] & keep
            if m:
                index[h] = m
            else:
                del index[h]
        self._index = None
