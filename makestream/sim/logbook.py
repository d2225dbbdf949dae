"""A sorted log (scenario logs, module logs) with Make's filters and keyset paging.

Entries are kept sorted by `(timestamp ms, imtId)`, which is the same order as sorting by `imtId`
(its prefix is the 13-digit timestamp) but also lets `from`/`to` in any number of digits bisect
correctly. Entries arrive out of order (a run's entry lands when the run ends, at its start time),
so inserts use bisect; each page costs O(log n + page), never a scan of everything.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_MAX_KEY = "\U0010ffff"


def imt_key(imt_id: str) -> tuple[int, str]:
    """The sort key of an imtId (`{epochMs}_scenario...`); ValueError if it has no ms prefix."""
    prefix, sep, _ = imt_id.partition("_")
    if not sep or not prefix.isdigit():
        raise ValueError(f"not an imtId: {imt_id!r}")
    return int(prefix), imt_id


@dataclass(frozen=True)
class PageQuery:
    """One page request: Make's `from`/`to` (ms, inclusive) and `pg[...]` parameters."""

    limit: int = 50
    offset: int = 0
    desc: bool = True
    last: str | None = None
    show_last: bool = False
    from_ms: int | None = None
    to_ms: int | None = None


class LogBook(Generic[T]):
    """Entries of type T sorted by imtId."""

    def __init__(self) -> None:
        self._keys: list[tuple[int, str]] = []
        self._items: dict[str, T] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, imt_id: str, item: T) -> None:
        key = imt_key(imt_id)
        insort(self._keys, key)
        self._items[imt_id] = item

    def page(self, query: PageQuery, keep: Callable[[T], bool] | None = None) -> list[T]:
        """The entries of one page, in the requested direction, after filters and `pg[last]`."""
        keys = self._keys
        lo = 0 if query.from_ms is None else bisect_left(keys, (query.from_ms, ""))
        hi = len(keys) if query.to_ms is None else bisect_right(keys, (query.to_ms, _MAX_KEY))
        if query.last is not None:
            last = imt_key(query.last)
            # Keyset paging: strictly past `last` in the sort direction, or from it with showLast.
            if query.desc:
                edge = bisect_right(keys, last) if query.show_last else bisect_left(keys, last)
                hi = min(hi, edge)
            else:
                edge = bisect_left(keys, last) if query.show_last else bisect_right(keys, last)
                lo = max(lo, edge)
        out: list[T] = []
        skip = query.offset
        for index in self._indices(lo, hi, query.desc):
            item = self._items[keys[index][1]]
            if keep is not None and not keep(item):
                continue
            if skip:
                skip -= 1
                continue
            out.append(item)
            if len(out) >= query.limit:
                break
        return out

    @staticmethod
    def _indices(lo: int, hi: int, desc: bool) -> Iterator[int]:
        return iter(range(hi - 1, lo - 1, -1) if desc else range(lo, hi))
