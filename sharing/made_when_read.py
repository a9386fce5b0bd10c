"""A sequence of result objects made the first time anything reads them.

The report and the worker read a run's results as columns or documents; only tests and tools
read them as objects (`Finding`s, `SharedPair`s). Making thousands of those objects in every run
for the few readers that do cost a tenth of a run at 100,000 access rows, so the results that
have such readers keep what they were made from and make the objects on first read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar, overload

T = TypeVar("T")


class MadeWhenRead(Sequence[T]):
    """Subclasses say how to make their items (`_make`) and how many there are (`__len__`,
    answered without making them). Equal to another of the same class, or to a tuple, with the
    same items; hashed and printed as the tuple of its items."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: tuple[T, ...] | None = None

    def _make(self) -> tuple[T, ...]:
        raise NotImplementedError

    def _all(self) -> tuple[T, ...]:
        if self._items is None:
            self._items = self._make()
        return self._items

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...

    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        return self._all()[index]

    def __iter__(self) -> Iterator[T]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, type(self)):
            return self._all() == other._all()
        if isinstance(other, tuple):
            return self._all() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._all())

    def __repr__(self) -> str:
        return repr(self._all())
