"""Immutable values compared, hashed and shown like frozen dataclasses.

``Segment`` and the core's events were frozen dataclasses. They are written out as
plain classes so that mypyc (``setup.py``) compiles them to native classes, built
many times faster (``benchmarks/README.md``); this base gives them back what the
dataclass decorator wrote: ``==`` and ``hash`` over the fields, for objects of the
same class only, and the dataclass's ``repr``. Each subclass names its fields in
order in ``FIELDS`` and stores them itself.
"""

from __future__ import annotations

from typing import ClassVar


class FrozenValue:
    """The fields of ``FIELDS`` make the value: equality, hash and repr."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple([getattr(self, name) for name in self.FIELDS])

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, FrozenValue)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        pairs = zip(self.FIELDS, self._values(), strict=True)
        return f"{type(self).__name__}({', '.join(f'{name}={value!r}' for name, value in pairs)})"
