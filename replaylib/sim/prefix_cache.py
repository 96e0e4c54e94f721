"""A worker's prefix cache: an LRU of KV block ids."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


class PrefixCache:
    """LRU set of block ids with a fixed capacity (in blocks).

    Touching or inserting a request's ids walks them last to first, so its
    leading (most shareable) blocks end up most recently used and a request's
    tail is evicted before its head.
    """

    __slots__ = ("_lru", "capacity")

    def __init__(self, capacity_blocks: int) -> None:
        self.capacity = capacity_blocks
        self._lru: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, block: int) -> bool:
        return block in self._lru

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
        for i in range(n - 1, -1, -1):
            move(hash_ids[i])

    def insert(self, hash_ids: Sequence[int]) -> None:
        """Insert/refresh all ids (last to first), then evict down to capacity."""
        lru = self._lru
        move = lru.move_to_end
        for i in range(len(hash_ids) - 1, -1, -1):
            h = hash_ids[i]
            if h in lru:
                move(h)
            else:
                lru[h] = None
        excess = len(lru) - self.capacity
        while excess > 0:
            lru.popitem(last=False)
            excess -= 1
