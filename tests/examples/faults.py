"""Faults injected into the demo services for the example tests: failures, held calls, counts.

The example's services (``services/``) hold no test hooks; a test wraps the methods
of one service instance instead, and the workflows calling them notice nothing::

    fail_on(inventory, "create_reservation")            # every call fails
    fail_on(cms, "upsert_product", times=1)             # only the next call fails
    fail_on(inventory, "create_reservation", after=1)   # the first call works, then fail
    heal(inventory)                                     # every call works again
    calls = count_calls(user_data)                      # calls["transform_data"] == 2
    gate = hold(external, "fetch_changes")              # calls wait in gate ...
    gate.release()                                      # ... until this

A failing call raises :class:`ServiceError` before it changes anything.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio

__all__ = ["Gate", "ServiceError", "count_calls", "fail_on", "heal", "hold"]


class ServiceError(RuntimeError):
    """A demo service call failed because a test asked it to (see :func:`fail_on`)."""


class Gate:
    """Holds the calls of one operation until :meth:`release`.

    Attributes:
        waiting: how many calls are held right now.
    """

    def __init__(self) -> None:
        self.waiting = 0
        self._open = anyio.Event()

    def release(self) -> None:
        """Let the held calls, and every later one, go on."""
        self._open.set()

    async def pass_through(self) -> None:
        """Wait until the gate is released (at once if it is)."""
        self.waiting += 1
        try:
            await self._open.wait()
        finally:
            self.waiting -= 1


class _Faults:
    """What the wrapped methods of one service do before calling through."""

    def __init__(self, service: Any) -> None:
        self.name: str = service.name
        self.calls: Counter[str] = Counter()
        # operation -> [calls still to let through, calls still to fail (None: all)].
        self.failures: dict[str, list[Any]] = {}
        self.gates: dict[str, Gate] = {}
        for operation, method in inspect.getmembers(service, inspect.ismethod):
            if not operation.startswith("_"):
                setattr(service, operation, self._wrap(operation, method))

    def _wrap(self, operation: str, method: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(method):

            async def call_async(*args: Any, **kwargs: Any) -> Any:
                self._enter(operation)
                gate = self.gates.get(operation)
                if gate is not None:
                    await gate.pass_through()
                return await method(*args, **kwargs)

            # The wrapper keeps the method's signature: the runtime reads it to pass
            # a step function its arguments.
            return functools.wraps(method)(call_async)

        def call(*args: Any, **kwargs: Any) -> Any:
            self._enter(operation)
            return method(*args, **kwargs)

        return functools.wraps(method)(call)

    def _enter(self, operation: str) -> None:
        """Count the call, and raise if ``operation`` is set to fail."""
        self.calls[operation] += 1
        plan = self.failures.get(operation)
        if plan is None:
            return
        if plan[0] > 0:
            plan[0] -= 1
            return
        if plan[1] is not None:
            plan[1] -= 1
            if plan[1] <= 0:
                del self.failures[operation]
        raise ServiceError(f"{self.name}.{operation} is unavailable")


_faults: weakref.WeakKeyDictionary[Any, _Faults] = weakref.WeakKeyDictionary()


def _faults_of(service: Any, operation: str | None = None) -> _Faults:
    """The faults of ``service``, wrapping its public methods on first use."""
    if operation is not None and not callable(getattr(type(service), operation, None)):
        raise ValueError(f"{type(service).__name__} has no operation {operation!r}")
    faults = _faults.get(service)
    if faults is None:
        faults = _faults[service] = _Faults(service)
    return faults


def fail_on(service: Any, operation: str, times: int | None = None, *, after: int = 0) -> None:
    """Make calls to ``service.operation`` raise :class:`ServiceError`.

    Args:
        service: a demo service instance.
        operation: the method name, e.g. ``"create_reservation"``.
        times: how many calls fail; ``None`` fails every call.
        after: let this many calls succeed first (to fail half-way through a loop).
    """
    _faults_of(service, operation).failures[operation] = [after, times]


def heal(service: Any) -> None:
    """Stop every failure set on ``service`` with :func:`fail_on`."""
    _faults_of(service).failures.clear()


def count_calls(service: Any) -> Counter[str]:
    """The calls made to each method of ``service``, failed calls included.

    Counted from the first call of this module's helpers on ``service``: call this
    before the calls to count.
    """
    return _faults_of(service).calls


def hold(service: Any, operation: str) -> Gate:
    """Make calls to ``service.operation`` (an async method) wait until the gate is released."""
    faults = _faults_of(service, operation)
    if not inspect.iscoroutinefunction(getattr(type(service), operation)):
        raise ValueError(f"only an async method can be held, not {operation!r}")
    gate = faults.gates[operation] = Gate()
    return gate
