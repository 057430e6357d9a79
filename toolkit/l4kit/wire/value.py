"""Immutable value classes that mypyc compiles: one mechanism for all of them.

``SeqNum``, ``Segment`` and the core's events are made several times per packet, so
``setup.py`` compiles their modules with mypyc. Compiled, each is a native class whose
written ``__init__`` stores its ``Final`` fields directly, in well under a microsecond
(docs/design.md, "What is compiled with mypyc, and why"); nothing outside the class can
store to them.

As pure Python the same classes must stay immutable, and fast: a ``__setattr__`` that
refuses every store (here on :class:`FrozenValue`, on ``SeqNum`` itself) would refuse
the written ``__init__`` too. So :func:`pure_python_init` gives each class, once at
import, an ``__init__`` with the written one's parameters that stores each field
through its slot's own setter, past ``__setattr__`` (a dataclass's ``object.__setattr__``
per field costs more). Compiled, it does nothing. A class that uses it writes its
``__init__`` as ``self.<field>: Final = <parameter>``, one parameter per field; a
field that the written ``__init__`` normalizes names its normalizing function in
``convert``, which the pure-Python ``__init__`` applies.

:class:`FrozenValue` adds what a frozen dataclass has: ``==`` and ``hash`` over the
fields (``FIELDS``, in order) for objects of the same class only, the dataclass's
``repr``, pickling, and ``FrozenInstanceError`` on any store.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import FrozenInstanceError
from types import FunctionType
from typing import Any, ClassVar


def pure_python_init(
    cls: type, convert: Mapping[str, str] | None = None, names: Mapping[str, object] | None = None
) -> None:
    """As pure Python, replace ``cls.__init__`` by one that stores through the slots' setters.

    The replacement has the written ``__init__``'s signature (names, kinds, defaults),
    so calls and errors are the same. ``convert`` maps a parameter to the Python
    expression the written ``__init__`` stores instead of it (written inline, as a
    function call would cost as much as the store: ``SeqNum`` is made several times a
    segment); ``names`` are what those expressions refer to. Compiled (a native class,
    whose ``__init__`` is not a Python function), nothing changes.
    """
    written = vars(cls)["__init__"]
    if not isinstance(written, FunctionType):
        return
    convert = convert or {}
    namespace: dict[str, object] = dict(names or {})
    params: list[str] = []
    stores: list[str] = []
    star = False
    for p in list(inspect.signature(written).parameters.values())[1:]:
        if p.kind is p.KEYWORD_ONLY and not star:
            params.append("*")
            star = True
        if p.default is p.empty:
            params.append(p.name)
        else:
            namespace[f"_default_{p.name}"] = p.default
            params.append(f"{p.name}=_default_{p.name}")
        slot = next(vars(klass)[p.name] for klass in cls.__mro__ if p.name in vars(klass))
        namespace[f"_set_{p.name}"] = slot.__set__
        value = convert.get(p.name, p.name)
        stores.append(f"    _set_{p.name}(self, {value})")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(stores or ["    pass"])
    exec(source, namespace)
    init: Any = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = written.__doc__
    setattr(cls, "__init__", init)  # noqa: B010 - a method, replaced


def _rebuild(cls: Any, values: tuple[object, ...]) -> object:
    """Unpickling: the fields by name (some classes take them keyword-only)."""
    return cls(**dict(zip(cls.FIELDS, values, strict=True)))


class FrozenValue:
    """The fields of ``FIELDS`` make the value: equality, hash, repr, pickling; no store."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple([getattr(self, name) for name in self.FIELDS])

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

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

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self._values()))
