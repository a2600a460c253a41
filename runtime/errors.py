"""The one exception tree of runtime.

Every error the library raises on purpose derives from :class:`RuntimeBaseError`
and, where one fits, from an honest
builtin so ``except LookupError`` and friends keep working::

    RuntimeBaseError
    ├── ConfigError (ValueError)                bad runtime.toml / constructor arguments
    ├── InputValidationError (ValueError)       a run's input does not match its schema
    ├── DefinitionError (ValueError)            a workflow, step or argument that cannot work
    │   ├── StepOutsideWorkflowError            a step called outside a constructor
    │   ├── DuplicateStepError                  two steps with one name in a workflow
    │   └── ReferenceMisuseError (TypeError)    plain Python on a reference
    ├── UnknownServiceError (LookupError)       Container.resolve of an unknown name
    ├── UnknownWorkflowError (LookupError)      a workflow name/version nobody registered
    ├── RunNotFoundError (LookupError)          no run with that id
    ├── DeliveryNotFoundError (LookupError)     no delivery with that id
    ├── SerializationError (TypeError)          a value that cannot be stored as JSON
    ├── StepFailed                              a step failed; carries type and message
    │   └── StepTimeoutError (TimeoutError)     a step ran past its timeout
    ├── HandlerTimeoutError (TimeoutError)      a subscriber's handler ran past its timeout
    ├── RunFailed                               a run ended failed / canceled
    ├── InvalidTransitionError (ValueError)     e.g. pause of a completed run
    ├── NonDeterminismError                     replay met a different step than recorded
    ├── NotConfiguredError                      a container with no runtime behind it
    └── StoreError                              the database refused us
        ├── SchemaVersionError                  the file has a newer schema than this code
        ├── DatabaseNotFoundError (LookupError) a read found no database at the path
        ├── DatabaseReplacedError               the open file was deleted or replaced
        ├── LeaseLostError                      another worker took the run over
        ├── StoreArgumentError (ValueError)     a bad limit, cursor, status or action
        └── StoreOperationError                 the connection or the file failed (disk I/O...)
            ├── CommitUncertainError            the connection was lost while committing
            ├── StoreClosedError                the store was used after close()
            ├── DatabaseLockedError (TimeoutError)  locked by another past the busy timeout
            └── CorruptRecordError (ValueError)     a stored row that cannot be decoded

Errors that cross a process boundary are stored as data, never pickled: one record,
:class:`runtime.models.StepError` (step, type, message, traceback text), made from an
exception by :func:`as_record`.

Control signals are not errors: the engine raises them to unwind its own frames, and
none escapes it::

    BaseException
    ├── Suspended          the run stops here (sleep, parked retry, pause, shutdown, cancel)
    └── ReplayEnded        a read-only replay reached a step with no record
    Exception
    └── PermanentFailure   a step returned ``StepResponse.permanent_failure``

The first two are BaseExceptions so that ``except Exception`` in a workflow's own code
cannot swallow them.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import Any

from runtime.models import RunStatus, StepError


class RuntimeBaseError(Exception):
    """Root of every error runtime raises on purpose."""


class ConfigError(RuntimeBaseError, ValueError):
    """Configuration that cannot be used (bad key, bad value, bad URL)."""


class InputValidationError(RuntimeBaseError, ValueError):
    """A run's input does not match the workflow's ``input`` schema; no run was created."""

    def __init__(self, workflow: str, detail: str) -> None:
        self.workflow = workflow
        self.detail = detail
        super().__init__(f"invalid input for workflow {workflow!r}: {detail}")


class DefinitionError(RuntimeBaseError, ValueError):
    """A definition or a call argument cannot work (a wrong type, NaN, out of bounds)."""


class StepOutsideWorkflowError(DefinitionError):
    """A step was called outside a workflow constructor function."""


class DuplicateStepError(DefinitionError):
    """Two steps share one name inside one workflow."""


class ReferenceMisuseError(DefinitionError, TypeError):
    """Plain Python was applied to a reference inside a workflow constructor."""


class UnknownServiceError(RuntimeBaseError, LookupError):
    """``Container.resolve`` was asked for a name nobody registered."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        listed = ", ".join(sorted(known)) or "(nothing registered)"
        super().__init__(f"no service named {name!r} in the container; registered: {listed}")


class UnknownWorkflowError(RuntimeBaseError, LookupError):
    """A workflow (or one version of it) is not known to this runtime.

    Attributes:
        workflow: the name asked for.
        version: the version asked for (``None``: any).
        versions: the versions of ``workflow`` that are known (none if the name is not).
        workflows: the names of the workflows that are known.
    """

    def __init__(
        self,
        workflow: str,
        version: str | None = None,
        *,
        versions: Sequence[str | None] = (),
        workflows: Sequence[str] = (),
    ) -> None:
        self.workflow = workflow
        self.version = version
        self.versions = list(versions)
        self.workflows = list(workflows)
        label = repr(workflow)
        if self.versions:  # the name is known, not this version of it
            label += f" version {version!r}" if version else " without a version"
            known = f"known versions: {self.versions}"
        else:
            label += f" version {version!r}" if version else ""
            known = f"known workflows: {self.workflows}" if self.workflows else "none is known"
        super().__init__(f"unknown workflow {label}; {known}")


class RunNotFoundError(RuntimeBaseError, LookupError):
    """No run exists with the given id."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}")


class DeliveryNotFoundError(RuntimeBaseError, LookupError):
    """No delivery (of an event to a subscriber) with that id."""

    def __init__(self, delivery_id: str) -> None:
        self.delivery_id = delivery_id
        super().__init__(f"no delivery with id {delivery_id!r}")


class SerializationError(RuntimeBaseError, TypeError):
    """A value could not be stored as JSON."""


class StepFailed(RuntimeBaseError):
    """A step failed for good.

    Attributes:
        step: the step's name.
        error_type: the class name of the original exception.
        message: its message.
        run_id: the run it failed in, when raised by ``run()``.
    """

    def __init__(self, step: str, error_type: str, message: str, run_id: str | None = None) -> None:
        self.step = step
        self.error_type = error_type
        self.message = message
        self.run_id = run_id
        where = f" (run {run_id})" if run_id else ""
        super().__init__(f"step {step!r} failed{where}: {error_type}: {message}")


class StepTimeoutError(StepFailed, TimeoutError):
    """A step ran past its ``timeout`` and was cancelled."""


class HandlerTimeoutError(RuntimeBaseError, TimeoutError):
    """A subscriber's handler ran past its ``timeout``; the delivery counts it as a failure."""


class RunFailed(RuntimeBaseError):
    """A run ended ``failed``, ``compensation_failed`` or ``canceled``.

    Attributes:
        run_id: the run.
        status: its final status.
        error: the stored error that ended it, if any.
    """

    def __init__(self, run_id: str, status: str, error: StepError | None) -> None:
        self.run_id = run_id
        self.status = status
        self.error = error
        detail = f": {error.type}: {error.message}" if error else ""
        super().__init__(f"run {run_id} ended {status}{detail}")


class InvalidTransitionError(RuntimeBaseError, ValueError):
    """A management call does not apply to the run's current status."""


class NonDeterminismError(RuntimeBaseError):
    """On replay, the step at a sequence number is not the one that was recorded there."""

    def __init__(self, run_id: str, seq: int, recorded: str, found: str) -> None:
        self.run_id = run_id
        self.seq = seq
        self.recorded = recorded
        self.found = found
        super().__init__(
            f"run {run_id}: step #{seq} was recorded as {recorded!r} but the workflow's code now "
            f"has {found!r} there; the code changed under a running run (start a new version)"
        )


class NotConfiguredError(RuntimeBaseError):
    """A workflow was run through a container that has no runtime behind it."""


class StoreError(RuntimeBaseError):
    """The store could not do what was asked."""


class SchemaVersionError(StoreError):
    """The database was written by a newer runtime than this one."""


class DatabaseNotFoundError(StoreError, LookupError):
    """A command that only reads found no database at the path (it never creates one)."""

    def __init__(self, path: str, detail: str = "there is no such file") -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"no runtime database at {path}: {detail}")


class DatabaseReplacedError(StoreError):
    """The database file was deleted or replaced while the store had it open."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        super().__init__(
            f"the database file {path} {detail} while this process had it open; stopping "
            "rather than writing to a file nobody else can see"
        )


class LeaseLostError(StoreError):
    """A checkpoint found the run held by another worker (its lease had expired)."""

    def __init__(self, run_id: str, owner_id: str) -> None:
        self.run_id = run_id
        self.owner_id = owner_id
        super().__init__(f"run {run_id} is no longer held by worker {owner_id}")


class StoreArgumentError(StoreError, ValueError):
    """A store method was given an argument it cannot use (a bad limit, cursor or action)."""


class StoreOperationError(StoreError):
    """An operation of the store failed in the layer below it: the connection or the file.

    Raised for every exception of the SQLite driver (a disk I/O error, a read-only
    file, a constraint), which is kept as ``__cause__``.

    Attributes:
        operation: the store method that failed (``checkpoint``, ``get_run``...).
        path: the database file.
        run_id: the run it was about, when there is one.
        detail: what went wrong.
    """

    def __init__(self, operation: str, path: str, detail: str, run_id: str | None = None) -> None:
        self.operation = operation
        self.path = path
        self.detail = detail
        self.run_id = run_id
        about = f" (run {run_id})" if run_id else ""
        super().__init__(f"{operation} on the database {path}{about}: {detail}")


class CommitUncertainError(StoreOperationError):
    """The connection to a database server was lost while a write committed: it may or
    may not have happened. Never retried blindly; the caller's recovery decides."""


class StoreClosedError(StoreOperationError):
    """The store was used after it was closed."""

    def __init__(self, operation: str, path: str, run_id: str | None = None) -> None:
        super().__init__(operation, path, "the store is closed", run_id)


class DatabaseLockedError(StoreOperationError, TimeoutError):
    """Another connection held the database's lock past the busy timeout."""


class CorruptRecordError(StoreOperationError, ValueError):
    """A row read from the database cannot be decoded (bad JSON, an unknown status...)."""


def as_record(
    exc: BaseException, step: str | None = None, *, message: str | None = None
) -> StepError:
    """``exc`` as data, to store and show: its type (the original one, for a
    :class:`StepFailed`), message (``message`` when given) and traceback text, and the
    step it came from.

    Text that JSON cannot carry (a lone surrogate, from bytes decoded with
    ``surrogateescape``) is escaped, so that the record can always be stored.
    """
    if isinstance(exc, StepFailed):
        kind, text, step = exc.error_type, exc.message, step or exc.step
    else:
        kind, text = type(exc).__name__, str(exc)
    return StepError(
        step=step,
        type=kind,
        message=_storable(text if message is None else message),
        traceback=_storable(_format(exc)),
    )


def _storable(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


# -- control signals ----------------------------------------------------------------------


class Suspended(BaseException):
    """Unwinds a driver (and a durable workflow's own code) when the run stops here.

    A BaseException so that ``except Exception`` in user code cannot swallow it.
    ``status`` is what the run is left in: sleeping (a durable sleep or a parked
    retry), paused, pending (shutdown), or compensating (a cancel).
    """

    def __init__(self, status: RunStatus) -> None:
        super().__init__(status.value)
        self.status = status


class ReplayEnded(BaseException):
    """A read-only replay (learning a rollback's compensations) reached a step with no
    record: there is nothing more to learn."""


class PermanentFailure(Exception):
    """A step returned ``StepResponse.permanent_failure``: no retry, the step failed."""

    def __init__(self, message: str, compensate_input: Any) -> None:
        super().__init__(message)
        self.message = message
        self.compensate_input = compensate_input

    def record(self, step: str) -> StepError:
        """The failure as data."""
        return StepError(step=step, type="PermanentFailure", message=self.message)


def _format(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
