"""Name -> object registries whose errors list the valid names and the valid options."""
from __future__ import annotations

import inspect
from typing import Any, Callable, Generic, Iterable, TypeVar

from soundseek.config import ConfigError

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

    :meth:`build` is the one place where a factory's keyword options are checked: an unknown
    option raises :class:`~soundseek.config.ConfigError` listing the valid ones.
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

    def options(self, name: str, reserved: Iterable[str] = ()) -> list[str] | None:
        """The keyword options factory ``name`` takes (signature order, ``reserved`` left out);
        None when it takes any keyword (``**kwargs``)."""
        params = inspect.signature(self.get(name)).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return None
        skip = {"self", *reserved}
        return [n for n, p in params.items() if n not in skip and p.kind is not p.VAR_POSITIONAL]

    def check_options(self, name: str, options: dict[str, Any], where: str | None = None,
                      reserved: Iterable[str] = ()) -> None:
        """Raise ConfigError on the first key of ``options`` that factory ``name`` does not take.

        Args:
            where: the recipe key holding ``options`` (``"model.options"``), named in the message.
            reserved: parameters the caller passes itself (e.g. widths), not options of a recipe.
        """
        valid = self.options(name, reserved)
        if valid is None:
            return
        for key in options:
            if key not in valid:
                what = f"key {where}.{key!r}" if where else f"option {key!r}"
                raise ConfigError(f"Unknown {what} for {self.kind} {name!r}. Valid: {', '.join(valid)}")

    def build(self, name: str, /, **options: Any) -> T:
        """``get(name)(**options)`` after :meth:`check_options`: an unknown name raises KeyError
        listing the valid names, an unknown option ConfigError listing the valid options."""
        self.check_options(name, options)
        return self.get(name)(**options)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def check_choice(name: str, value: object, valid: tuple[object, ...]) -> None:
    """Raise ValueError listing the valid values when ``value`` is not one of them
    (``Invalid pooling 'x'. Valid: mean, max, meanmax``)."""
    if value not in valid:
        raise ValueError(f"Invalid {name} {value!r}. Valid: {', '.join(map(str, valid))}")
