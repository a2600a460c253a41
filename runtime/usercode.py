"""Calling the user's code (steps, compensations, handlers, jobs): what its exceptions mean.

Whatever a step or a handler raises is its own failure, to record and retry,
``BaseException``s included: a ``sys.exit(3)`` or a ``KeyboardInterrupt`` in a
step fails the step and must not stop the service (whose own SIGINT and SIGTERM
arrive through a signal receiver, never as an exception in user code). The one
exception that is not the code's failure is a cancellation of ours: a shutdown,
a timeout, the caller's task cancelled. A ``CancelledError`` is ours only when
the task is really being cancelled; one the code raises itself, or gets from a
future someone else cancelled, is a failure like any other.
"""

from __future__ import annotations

import asyncio
import math

import anyio

from runtime.errors import StoredError


def being_cancelled() -> bool:
    """True when the calling task is being cancelled: a scope around it, or the task itself.

    A ``CancelledError`` seen then is a real cancellation, which must propagate.
    """
    if anyio.current_effective_deadline() == -math.inf:  # an enclosing scope was cancelled
        return True
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0  # task.cancel() outside any scope


def is_failure(exc: BaseException) -> bool:
    """Whether ``exc``, raised by user code, is that code's failure (else it must propagate).

    Call it in the ``except`` clause, in the task that ran the code: whether a
    ``CancelledError`` is a real cancellation depends on that task's state.
    """
    if isinstance(exc, (Exception, SystemExit, KeyboardInterrupt)):
        return True
    if isinstance(exc, asyncio.CancelledError):
        return not being_cancelled()
    if isinstance(exc, BaseExceptionGroup):
        return all(is_failure(leaf) for leaf in exc.exceptions)
    return False  # GeneratorExit, the engine's own control flow


def failure(exc: BaseException, what: str, step: str | None = None) -> StoredError:
    """The stored error for a failure of user code; ``what`` names the code ("step 'x'")."""
    stored = StoredError.from_exception(exc, step)
    if not isinstance(exc, Exception):
        # str(KeyboardInterrupt()) is empty and str(SystemExit(3)) is "3": say where it came from.
        detail = f" ({exc})" if str(exc) else ""
        stored.message = f"{type(exc).__name__}{detail} raised by the code of {what}"
        if isinstance(exc, asyncio.CancelledError):
            stored.message += ", which was not being cancelled"
    return stored
