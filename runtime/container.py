"""The container: named services that steps, subscribers and jobs resolve."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from runtime.errors import ConfigError, UnknownServiceError


class Container:
    """A registry of named services.

    ``register`` stores a value; ``register_factory`` stores a function called
    once, on the first ``resolve``, whose result is kept. ``resolve`` of an
    unknown name raises :class:`UnknownServiceError` listing what is registered.
    """

    __slots__ = ("_factories", "_values")

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._factories: dict[str, Callable[[Container], Any] | Callable[[], Any]] = {}

    def register(self, name: str, value: Any) -> None:
        """Register ``value`` under ``name`` (replacing what was there)."""
        _check(name)
        self._factories.pop(name, None)
        self._values[name] = value

    def register_factory(self, name: str, factory: Callable[..., Any]) -> None:
        """Register a factory, called once with the container (or with no argument)."""
        _check(name)
        if not callable(factory):
            raise ConfigError(f"factory for {name!r} must be callable, got {factory!r}")
        self._values.pop(name, None)
        self._factories[name] = factory

    def unregister(self, name: str, value: Any) -> None:
        """Remove ``name`` if it still holds ``value``; a replacement registered since stays.

        A runtime removes the services it registered when it exits this way, so a
        container outlives a runtime without holding its closed parts.
        """
        if self._values.get(name) is value:
            del self._values[name]

    def resolve(self, name: str) -> Any:
        """The service registered under ``name``."""
        try:
            return self._values[name]
        except KeyError:
            pass
        factory = self._factories.get(name)
        if factory is None:
            raise UnknownServiceError(name, self.names())
        value = factory(self) if _takes_argument(factory) else factory()  # type: ignore[call-arg]
        del self._factories[name]
        self._values[name] = value
        return value

    def __contains__(self, name: object) -> bool:
        return name in self._values or name in self._factories

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted({*self._values, *self._factories})


def _takes_argument(factory: Callable[..., Any]) -> bool:
    try:
        return bool(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return False


def _check(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a service name must be a non-empty string, got {name!r}")
