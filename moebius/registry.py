"""One registry type for every named thing: datasets, protocols, presets, experiments, models,
baselines, weights, tables.

``Registry(what)`` maps names to objects: ``register`` refuses a second object under one name, ``get``
(and ``registry[name]``) raises ``UnknownNameError`` with the "did you mean" hint and the known names,
``names()`` feeds the CLI's ``click.Choice`` and the config's name checks, so that both always offer
exactly what the registry holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Generic, TypeVar

from moebius.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named objects of one kind (``what``: "dataset", "mask protocol", ...), in registration order."""

    def __init__(self, what: str, items: Mapping[str, T] | Iterable[tuple[str, T]] = ()) -> None:
        self.what = what
        self._items: dict[str, T] = {}
        for name, obj in items.items() if isinstance(items, Mapping) else items:
            self.register(name, obj)

    def register(self, name: str, obj: T) -> T:
        """Add ``obj`` under ``name``; a name registered twice is a programming error."""
        if name in self._items:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._items[name] = obj
        return obj

    def get(self, name: str) -> T:
        """The object called ``name``; ``UnknownNameError`` with a hint otherwise (never a default)."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UnknownNameError.of(self.what, name, self._items) from None

    __getitem__ = get

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def items(self):  # noqa: ANN201 - a dict view
        return self._items.items()

    def values(self):  # noqa: ANN201
        return self._items.values()

    def keys(self):  # noqa: ANN201
        return self._items.keys()

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {list(self._items)})"
