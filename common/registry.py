"""One way to register: a name, written literally where the thing it names is
defined, mapped to that thing. Models, runtimes and export formats each keep one
Registry; a decorator of theirs adds the decorated definition to it."""
from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from .errors import ModbenchError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Read-only to its users (a Mapping); `add` is for the decorators that fill it.
    `kind` names what it holds in messages ("model", "runtime", "export format")."""

    def __init__(self, kind: str, error: type[ModbenchError]):
        self.kind = kind
        self._error = error
        self._items: dict[str, T] = {}

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, name: str, item: T, *, replace: bool = False) -> T:
        """Register `item` as `name`. A name given twice is a bug in the suite (two
        definitions claim it), unless `replace` says a run-time entry is renewed."""
        if name in self._items and not replace:
            raise RuntimeError(f"{self.kind} {name!r} registered twice")
        self._items[name] = item
        return item

    def lookup(self, name: str, hint: str = "", otherwise: str | None = None) -> T:
        """The item of that name, or the registry's error in one line: `hint` if given,
        else the names closest to it, else `otherwise`, or all the names when the
        registry is short."""
        try:
            return self._items[name]
        except KeyError:
            pass
        if not hint:
            close = difflib.get_close_matches(str(name).lower(), self._items, n=3, cutoff=0.5)
            if close:
                hint = f"; did you mean {', '.join(close)}?"
            elif otherwise is not None:
                hint = otherwise
            elif len(self._items) <= 12:
                hint = f"; known: {', '.join(sorted(self._items))}"
        raise self._error(f"unknown {self.kind} {name!r}{hint}")
