"""Calling a step function: attempts, timeout, retries with backoff, and the outcome."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from runtime.errors import PermanentFailure, SerializationError, StepTimeoutError, as_record
from runtime.models import StepError
from runtime.retry import backoff
from runtime.sdk.steps import StepOptions
from runtime.usercode import failure, is_failure

RetryWait = Callable[[int, StepError, float], Awaitable[None]]
"""Waits out the delay before the next attempt: (failures so far, last error, seconds).

The executor records the failed attempt and, for a long delay, parks the run.
"""


@dataclasses.dataclass(slots=True)
class Attempted:
    """How a function fared over all its attempts.

    Exactly one of ``value`` (with ``ok``) and ``error`` is meaningful;
    ``permanent`` means retries were skipped (a permanent failure, or a value
    that cannot be stored).
    """

    ok: bool
    value: Any
    attempts: int
    error: StepError | None = None
    exception: BaseException | None = None


async def attempt(
    call: Callable[[int], Awaitable[Any]],
    *,
    options: StepOptions,
    name: str,
    prior_failures: int,
    wait: RetryWait,
    accept: Callable[[Any], Any],
) -> Attempted:
    """Call ``call(attempt_number)`` until it succeeds or its retries run out.

    ``accept`` turns a returned value into the stored result, raising to fail the
    attempt; a :class:`PermanentFailure` or :class:`SerializationError` it raises
    ends the attempts at once. Whatever else the function raises is a failed attempt
    (see :func:`runtime.usercode.is_failure`), except a cancellation of ours, which
    propagates.
    """
    failures = prior_failures
    while True:
        number = failures + 1
        error: BaseException
        try:
            if options.timeout is None:
                returned = await call(number)
            else:
                # Only our own deadline is a step timeout; a TimeoutError the step raises
                # itself (an upstream API timing out) is an ordinary failure.
                with anyio.move_on_after(options.timeout) as scope:
                    returned = await call(number)
                # Past the deadline is a timeout even when the step returned: it swallowed
                # the cancellation, or blocked the loop so that it never came.
                if scope.cancel_called or anyio.current_time() >= scope.deadline:
                    raise StepTimeoutError(
                        name,
                        StepTimeoutError.__name__,
                        f"step {name!r} ran past its timeout of {options.timeout}s",
                    )
            return Attempted(True, accept(returned), number)
        except PermanentFailure as exc:
            return Attempted(False, exc.compensate_input, number, exc.record(name), exc)
        except SerializationError as exc:
            return Attempted(False, None, number, as_record(exc, name), exc)
        except BaseException as exc:
            # A CancelledError of the step's own (not a cancellation of ours), sys.exit()
            # or KeyboardInterrupt in the step fail the attempt; they must not unwind the
            # worker or stop the service.
            if not is_failure(exc):
                raise
            error = exc
        failures += 1
        stored = failure(error, f"step {name!r}", name)
        if failures > options.max_retries:
            return Attempted(False, None, failures, stored, error)
        await wait(failures, stored, backoff(failures, options.retry_interval))
