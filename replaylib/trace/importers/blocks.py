"""Hash ids for imported traces: synthesised, passed through, or re-blocked.

*Synthesised* (the source has no prefix information): each request gets
``ceil(input_length / block_size)`` fresh ids from one counter, so no two
requests share a block; with ``shared_prefix_tokens = N`` the first
``N // block_size`` full blocks are ids ``0 .. N // block_size - 1`` in every
request long enough to fill them (a common system prompt), and fresh ids start
after them.  Ids follow output order, so they depend only on the inputs.

*Re-blocked* (the source has ids for ``source_block_size``-token blocks and the
target block size is ``k`` times that): every run of ``k`` consecutive source
ids (the last run may be shorter: a partial block) becomes one id, a stable
hash of the whole source prefix up to the end of that run::

    new[j] = blake2b(int64 little-endian bytes of src[0 : k*(j+1)]; 8 bytes) & (2**63 - 1)

So equal new ids mean equal prefixes (chained, like Mooncake's ids), the same
source prefixes give the same ids in every request and every run, and no table
is kept: memory does not grow with the number of distinct blocks (a collision
needs about 3e9 distinct blocks to reach a 1-in-1000 chance).  The output has
exactly ``ceil(input_length / block_size)`` ids: surplus source ids are ignored
and missing ones become fresh, request-unique hashed ids; such rows are counted.
With ``k == 1`` the source ids are kept unchanged.
"""

from __future__ import annotations

import sys
from array import array
from hashlib import blake2b
from struct import Struct

_MASK63 = (1 << 63) - 1
_PAD = Struct("<qq")
_BIG_ENDIAN = sys.byteorder == "big"

#: Largest id a source may hold (ids are written as int64).
MAX_ID = _MASK63


class Synthesiser:
    """Fresh (optionally shared-prefix) ids for sources without prefix information."""

    def __init__(self, block_size: int, shared_prefix_tokens: int) -> None:
        self.block_size = block_size
        self.shared = shared_prefix_tokens // block_size
        self._shared_ids = list(range(self.shared))
        self._next = self.shared

    def __call__(self, input_length: int) -> list[int]:
        n = -(-input_length // self.block_size)
        start = self._next
        if self.shared:
            k = min(self.shared, input_length // self.block_size)
            self._next = start + n - k
            return self._shared_ids[:k] + list(range(start, self._next))
        self._next = start + n
        return list(range(start, self._next))

    def describe(self) -> str:
        if self.shared:
            return (
                f"synthesised: {self.shared} shared prefix block(s) "
                f"({self.shared * self.block_size} tokens), then unique blocks of {self.block_size} tokens"
            )
        return f"synthesised: unique blocks of {self.block_size} tokens per request"


class Reblocker:
    """Fold ``source_block_size``-token ids into ``block_size``-token ids (see module doc)."""

    def __init__(self, source_block_size: int, block_size: int) -> None:
        self.source_block_size = source_block_size
        self.block_size = block_size
        self.k = block_size // source_block_size
        self.adjusted = 0  #: rows whose source id count did not match their input length
        self._pads = 0

    def __call__(self, ids: list[int], input_length: int) -> list[int]:
        if self.k == 1:
            return ids
        want = -(-input_length // self.block_size)
        usable = ids[: want * self.k]
        data = array("q", usable)
        if _BIG_ENDIAN:
            data.byteswap()
        raw = memoryview(data).cast("B")
        step = 8 * self.k
        h = blake2b(digest_size=8)
        out: list[int] = []
        for start in range(0, len(raw), step):
            h.update(raw[start : start + step])
            out.append(int.from_bytes(h.copy().digest(), "little") & _MASK63)
        if len(out) != want or len(ids) > len(usable):
            self.adjusted += 1
        while len(out) < want:  # never shared: a marker and a counter no id sequence can produce
            self._pads += 1
            h.update(_PAD.pack(-1, self._pads))
            out.append(int.from_bytes(h.copy().digest(), "little") & _MASK63)
        return out

    def describe(self) -> str:
        if self.k == 1:
            return f"kept from the source ({self.block_size}-token blocks)"
        return (
            f"re-blocked from {self.source_block_size}-token to {self.block_size}-token blocks "
            f"(blake2b of the source prefix, {self.k} source ids a block)"
        )


def check_ratio(source_block_size: int, block_size: int) -> str | None:
    """Why ``source_block_size`` ids cannot be re-blocked to ``block_size``, or None."""
    if block_size % source_block_size:
        return (
            f"cannot re-block {source_block_size}-token hash ids into {block_size}-token blocks: "
            f"--block-size must be a multiple of the source block size {source_block_size}"
        )
    return None

