"""Name -> object registries whose errors list the valid names."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories (classes or functions).

    Example:
        >>> POOLING = Registry("pooling")
        >>> @POOLING.register("mean")
        ... class Mean: ...
        >>> POOLING.get("mean").__name__
        'Mean'
        >>> POOLING.get("meen")
        Traceback (most recent call last):
        ...
        KeyError: "Invalid pooling 'meen'. Valid: mean"
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> T:
        return self.register(name)(obj)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"Invalid {self.kind} {name!r}. Valid: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def check_choice(name: str, value: object, valid: tuple[object, ...]) -> None:
    """Raise ValueError listing the valid values when ``value`` is not one of them
    (``Invalid pooling 'x'. Valid: mean, max, meanmax``)."""
    if value not in valid:
        raise ValueError(f"Invalid {name} {value!r}. Valid: {', '.join(map(str, valid))}")
