"""Calling the user's code (steps, compensations, handlers, jobs): what its exceptions mean,
and the threads its blocking functions run on.

Whatever a step or a handler raises is its own failure, to record and retry,
``BaseException``s included: a ``sys.exit(3)`` or a ``KeyboardInterrupt`` in a
step fails the step and must not stop the service (whose own SIGINT and SIGTERM
arrive through a signal receiver, never as an exception in user code). Two
exceptions are not the code's failure. A cancellation of ours: a shutdown, a
timeout, the caller's task cancelled; a ``CancelledError`` is ours only when the
task is really being cancelled; one the code raises itself, or gets from a
future someone else cancelled, is a failure like any other. And a real Ctrl-C in
an application that embeds a ``Runtime`` without handling SIGINT itself: Python
raises its ``KeyboardInterrupt`` in whatever code the main thread runs, an async
step's included, and it must stop the application, not fail the step
(:func:`from_a_signal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dis
import math
import queue
import signal
import threading
from collections.abc import Callable
from typing import Any

import anyio
from anyio.lowlevel import RunVar

from runtime.errors import as_record
from runtime.models import StepError


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
    if isinstance(exc, KeyboardInterrupt):
        return not from_a_signal(exc)
    if isinstance(exc, (Exception, SystemExit)):
        return True
    if isinstance(exc, asyncio.CancelledError):
        return not being_cancelled()
    if isinstance(exc, BaseExceptionGroup):
        return all(is_failure(leaf) for leaf in exc.exceptions)
    return False  # GeneratorExit, the engine's own control flow


_RAISES = frozenset({"RAISE_VARARGS", "RERAISE"})


def from_a_signal(exc: BaseException) -> bool:
    """Whether ``exc`` (a ``KeyboardInterrupt``) came from a real SIGINT, not from code.

    Python runs a signal's handler in the main thread, between two instructions of
    whatever runs there (an async step's code, when it blocks the loop); the default
    handler raises ``KeyboardInterrupt`` at that point, so the innermost frame of its
    traceback stopped at an instruction that is not a ``raise``. ``asyncio.run``'s own
    handler raises it (on a second Ctrl-C) from ``asyncio.runners``. Code that raises
    it itself, in a step's worker thread or anywhere, stops at a ``raise``.
    """
    tb = exc.__traceback__
    if tb is None:  # never raised: not from a signal
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    if tb.tb_frame.f_globals.get("__name__") == "asyncio.runners":
        return True
    # An application's own SIGINT handler that raises KeyboardInterrupt stops at its raise.
    if code is getattr(signal.getsignal(signal.SIGINT), "__code__", None):
        return True
    at = next((i.opname for i in dis.get_instructions(code) if i.offset == tb.tb_lasti), None)
    return at not in _RAISES


def failure(exc: BaseException, what: str, step: str | None = None) -> StepError:
    """The error record for a failure of user code; ``what`` names the code ("step 'x'")."""
    if isinstance(exc, Exception):
        return as_record(exc, step)
    # str(KeyboardInterrupt()) is empty and str(SystemExit(3)) is "3": say what happened.
    where = f"raised by the code of {what}"
    if isinstance(exc, SystemExit):
        message = f"sys.exit({exc.code!r}) in the code of {what}"
    elif isinstance(exc, asyncio.CancelledError):
        message = f"{where}, which was not being cancelled"
    else:
        message = f"{exc} ({where})" if str(exc) else where
    return as_record(exc, step, message=message)


async def run_in_thread(fn: Callable[[], Any]) -> Any:
    """Call a blocking ``fn`` in a daemon thread and return (or raise) what it did.

    Cancelling the caller abandons the thread (a step past its timeout fails at once,
    a shutdown is not held up). The thread is a daemon, so a blocking call cut off by a
    shutdown does not keep the process alive either: anyio's worker threads are joined
    at interpreter exit, which made ``runtime start`` outlive its ``shutdown_grace`` by
    as long as the step blocked. The caller's context variables (its log bindings)
    are visible in the thread.

    At most :data:`MAX_THREADS` run at once (:func:`thread_limiter`), abandoned ones
    included: the limiter's token is held until the thread finishes, not until the
    caller stops waiting, so a step that times out again and again cannot pile up
    threads (a call that never returns keeps its token for good). The limiter is not
    anyio's default one, which the runtime's own thread calls (the scheduler's, the
    store's) use: stuck user code cannot stall those.
    """
    loop = asyncio.get_running_loop()
    limiter = thread_limiter()
    context = contextvars.copy_context()
    done = anyio.Event()
    outcome: list[tuple[bool, Any]] = []
    borrower = object()  # the call holds the token, whoever stops waiting for it

    def finished() -> None:  # on the loop, once the thread is done
        limiter.release_on_behalf_of(borrower)
        done.set()

    def work() -> None:
        try:
            outcome.append((True, context.run(fn)))
        except BaseException as exc:  # handed to the caller, who decides what it means
            outcome.append((False, exc))
        # A closed loop (RuntimeError): the caller was abandoned long ago, and the
        # limiter went with its loop.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(finished)

    await limiter.acquire_on_behalf_of(borrower)
    try:
        _THREADS.submit(work)
    except BaseException:  # no thread started (cannot start a new thread)
        limiter.release_on_behalf_of(borrower)
        raise
    await done.wait()
    ok, value = outcome[0]
    if ok:
        return value
    raise value


MAX_THREADS = 40
"""The most threads blocking user code runs on at once, per event loop (anyio's default)."""

_LIMITER: RunVar[anyio.CapacityLimiter] = RunVar("runtime_user_code_threads")


def thread_limiter() -> anyio.CapacityLimiter:
    """The event loop's limiter of threads for blocking user code (:data:`MAX_THREADS`)."""
    try:
        return _LIMITER.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(MAX_THREADS)
        _LIMITER.set(limiter)
        return limiter


IDLE_THREAD_LIFETIME = 10.0
"""Seconds an idle daemon thread waits for more work before it ends."""


class _DaemonThreads:
    """Daemon threads kept for reuse (starting a thread per call costs a few hundred us)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[Callable[[], None]]] = []

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on an idle thread, or on a new one."""
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is None:
            inbox = queue.SimpleQueue()
            thread = threading.Thread(target=self._serve, args=(inbox,), daemon=True)
            thread.start()
        inbox.put(job)

    def _serve(self, inbox: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            try:
                job = inbox.get(timeout=IDLE_THREAD_LIFETIME)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:  # else a submitter took it: its job is coming
                        self._idle.remove(inbox)
                        return
                continue
            job()
            del job
            with self._lock:
                self._idle.append(inbox)


_THREADS = _DaemonThreads()
