"""The durable event bus: an outbox of events and one delivery per (event, subscriber).

``emit`` commits the event before it returns (nothing is delivered from
memory). The dispatcher then fans each new event out into deliveries, one
per matching subscriber (idempotent, so several processes may fan out the
same event), claims due deliveries and runs the handlers, each with its own
timeout, attempts and backoff. A delivery that fails is retried with
exponential backoff and jitter (capped); after ``max_attempts`` it is ``dead``,
listed, and can be redriven. A handler that succeeded is never run again for
that event, whatever happens to the other subscribers.

A run started inside a handler without a transaction id gets
``"{subscriber_id}:{event_id}:{workflow}"``, so a redelivered event finds the
run it started the first time instead of starting a second one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import structlog
from anyio.abc import TaskGroup, TaskStatus
from structlog.contextvars import bound_contextvars

from runtime.clock import Clock
from runtime.codec import dumps
from runtime.errors import DefinitionError, HandlerTimeoutError, StoreError
from runtime.ids import new_id
from runtime.limits import duration, shown, text
from runtime.models import DeliveryStatus
from runtime.retry import backoff
from runtime.sdk.specs import Event, Subscriber, SubscriberArgs, check_event_name, origin_scope
from runtime.store.base import Store
from runtime.store.records import DeliveryWork, NewEvent, SubscriberRow
from runtime.usercode import failure, is_failure

if TYPE_CHECKING:
    from runtime.container import Container

logger = structlog.get_logger("runtime.bus")

RETRY_INTERVAL = 1.0
"""Seconds before a failed delivery's first retry; doubles per attempt, with jitter."""

RETRY_CAP = 300.0
"""No wait between two attempts of a delivery is longer than this."""

BATCH = 256
"""Events fanned out, and deliveries claimed, per transaction."""

FINISH_TRIES = 3
"""How often recording a delivery's outcome is tried before it is left to redelivery."""

STALE_AFTER = 30.0
"""Seconds without a heartbeat after which another worker's running deliveries are retaken."""


def encode_event(
    name: str,
    data: Any,
    *,
    metadata: dict[str, Any] | None,
    delay: float | timedelta | None,
    idempotency_key: str | None,
    now: datetime,
) -> NewEvent:
    """Validate and serialize an event for the outbox (shared by the runtime and clients)."""
    check_event_name(name)
    if metadata is not None and not isinstance(metadata, dict):
        raise DefinitionError(f"event {name!r}: metadata must be a dict, got {shown(metadata)}")
    seconds = 0.0 if delay is None else duration(delay, f"event {name!r}: delay")
    if idempotency_key is not None:
        text(idempotency_key, f"event {name!r}: idempotency_key")
    return NewEvent(
        id=new_id("evt"),
        name=name,
        data=dumps(data, f"the data of event {name!r}"),
        metadata=dumps(metadata or {}, f"the metadata of event {name!r}"),
        occurred_at=now,
        available_at=now + timedelta(seconds=seconds),
        idempotency_key=idempotency_key,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class BusStatistics:
    """What an event bus delivered since it was created, and what it handles now.

    Attributes:
        delivered: deliveries its handlers completed.
        failed: attempts that failed (each retry counts).
        dead: deliveries that failed their last attempt.
        in_flight: deliveries being handled now.
    """

    delivered: int
    failed: int
    dead: int
    in_flight: int


class EventBus:
    """Emits events and delivers them to this runtime's subscribers.

    Args:
        store: the outbox and deliveries.
        clock: time source.
        worker_id: this process's worker id (the owner of claimed deliveries).
        subscribers: the subscribers this runtime runs.
        container: what handlers receive.
        concurrency: deliveries handled at once, at most.
        interval: seconds between scans when nothing wakes the dispatcher.
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        worker_id: str,
        subscribers: Sequence[Subscriber],
        container: Container,
        *,
        concurrency: int = 100,
        interval: float = 1.0,
        worker_ttl: float = 30.0,
    ) -> None:
        self.store = store
        self._worker_ttl = worker_ttl
        self.clock = clock
        self.worker_id = worker_id
        self.container = container
        self.concurrency = concurrency
        self.interval = interval
        self.subscribers = {s.id: s for s in subscribers}
        if len(self.subscribers) != len(subscribers):
            raise DefinitionError("two subscribers share one subscriber_id")
        self._wake = anyio.Event()
        self._draining = False
        self._in_flight = 0
        self.delivered = 0
        self.failed = 0
        self.dead = 0

    # -- emitting ------------------------------------------------------------

    async def emit(
        self,
        name: str,
        data: Any = None,
        *,
        metadata: dict[str, Any] | None = None,
        delay: float | timedelta | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Store an event durably and wake the dispatcher; returns the event id.

        With an ``idempotency_key`` already used, nothing is stored and the id of the
        event stored with it is returned.
        """
        event = encode_event(
            name,
            data,
            metadata=metadata,
            delay=delay,
            idempotency_key=idempotency_key,
            now=self.clock.now(),
        )
        # A cancel point before the write: the store's writes give the loop its turn but
        # are never cut off, so a loop of emits under a deadline stops here, not never.
        await anyio.lowlevel.checkpoint_if_cancelled()
        event_id, _ = await self.store.emit(event)
        self._wake.set()
        return event_id

    def poke(self) -> None:
        """Look for work now (an event was committed by this or another process)."""
        self._wake.set()

    def drain(self) -> None:
        """Claim no new deliveries (shutdown); handlers running go on. Non-blocking."""
        self._draining = True
        self._wake.set()

    @property
    def in_flight(self) -> int:
        """Deliveries being handled now."""
        return self._in_flight

    def statistics(self) -> BusStatistics:
        """Counters for operators."""
        return BusStatistics(
            delivered=self.delivered, failed=self.failed, dead=self.dead, in_flight=self._in_flight
        )

    # -- dispatching -----------------------------------------------------------

    async def register(self) -> None:
        """Declare this runtime's subscribers in the store, so fan-out routes to them.

        Whichever process fans an event out, it creates deliveries for the subscribers
        declared there; subscribers that no live process (a heartbeat within
        ``worker_ttl``) declares any more stop receiving new events. A process with no
        subscribers (a web app) declares nothing and deactivates nothing.
        """
        if self.subscribers:
            rows = [
                SubscriberRow(s.id, s.config.patterns, s.config.max_attempts)
                for s in self.subscribers.values()
            ]
            now = self.clock.now()
            live_since = now - timedelta(seconds=self._worker_ttl)
            await self.store.sync_subscribers(rows, now, self.worker_id, live_since)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Dispatch until cancelled."""
        async with anyio.create_task_group() as tg:
            task_status.started()
            while True:
                self._wake = anyio.Event()
                try:
                    worked = False if self._draining else await self.dispatch(tg)
                    if worked:
                        continue
                    timeout = await self._until_due()
                except StoreError:
                    # The database refused us (locked past the busy timeout, say): the
                    # service goes on and tries again shortly.
                    logger.exception("dispatch_store_failed", retry_in=self.interval)
                    timeout = self.interval
                with anyio.move_on_after(timeout):
                    await self._wake.wait()

    async def _until_due(self) -> float:
        """Seconds to wait: until the next delivery is due, at most ``interval``."""
        # With every slot busy, a due delivery waits for a slot (a finishing handler
        # wakes us), not for its time, or this loop would spin.
        if self._in_flight >= self.concurrency:
            return self.interval
        due = await self.store.next_delivery_at(list(self.subscribers))
        if due is None:
            return self.interval
        return min(self.interval, max((due - self.clock.now()).total_seconds(), 0.0))

    async def dispatch(self, tg: TaskGroup) -> bool:
        """Fan out new events and start handling due deliveries; True if it did anything."""
        now = self.clock.now()
        # A runtime with no subscribers of its own (a web app that only emits) leaves
        # fan-out to the services, which know their subscribers are declared.
        fanned = await self.store.fan_out(now, BATCH) if self.subscribers else 0
        room = self.concurrency - self._in_flight
        claimed: list[DeliveryWork] = []
        if room > 0 and self.subscribers:
            claimed = await self.store.claim_deliveries(
                self.worker_id,
                list(self.subscribers),
                now,
                now - timedelta(seconds=STALE_AFTER),
                min(room, BATCH),
            )
        for work in claimed:
            self._in_flight += 1
            tg.start_soon(self._deliver, work)
        return fanned > 0 or len(claimed) > 0

    async def _deliver(self, work: DeliveryWork) -> None:
        subscriber = self.subscribers[work.subscriber_id]
        event = work.event
        log = logger.bind(
            event_id=event.id, event=event.name, subscriber=subscriber.id, attempt=work.attempt
        )
        args = SubscriberArgs(
            event=Event(
                id=event.id,
                name=event.name,
                data=event.data,
                metadata=event.metadata,
                occurred_at=event.occurred_at,
            ),
            container=self.container,
            logger=log,
        )
        timeout = subscriber.config.timeout
        try:
            try:
                with (
                    origin_scope(f"{subscriber.id}:{event.id}"),
                    bound_contextvars(
                        event_id=event.id, event=event.name, subscriber=subscriber.id
                    ),
                ):
                    with anyio.move_on_after(timeout) as scope:
                        await subscriber.handler(args)
                # Past the deadline even if it returned (it swallowed the cancellation).
                if scope.cancel_called or anyio.current_time() >= scope.deadline:
                    raise HandlerTimeoutError(f"handler ran past its timeout of {timeout}s")
            except BaseException as exc:
                # A CancelledError of the handler's own, sys.exit() or KeyboardInterrupt in
                # it fail this attempt; only a cancellation of ours (shutdown) propagates.
                if not is_failure(exc):
                    raise
                await self._failed(work, exc, log)
                return
            await self._finish(work, DeliveryStatus.DONE)
            self.delivered += 1
        finally:
            self._in_flight -= 1
            self._wake.set()

    async def _failed(self, work: DeliveryWork, exc: BaseException, log: Any) -> None:
        error = failure(exc, f"subscriber {work.subscriber_id!r}", work.subscriber_id)
        text = error.model_dump_json()
        now = self.clock.now()
        self.failed += 1
        if work.attempt >= work.max_attempts:
            self.dead += 1
            log.error("delivery_dead", error=error.message, error_type=error.type)
            await self._finish(work, DeliveryStatus.DEAD, error=text)
            return
        delay = backoff(work.attempt, RETRY_INTERVAL, RETRY_CAP)
        log.warning("delivery_retry_scheduled", error=error.message, delay_s=round(delay, 3))
        await self._finish(
            work, DeliveryStatus.PENDING, error=text, available_at=now + timedelta(seconds=delay)
        )

    async def _finish(self, work: DeliveryWork, status: DeliveryStatus, **details: Any) -> None:
        """Record a delivery's outcome, trying again if the database refuses for a while.

        A delivery whose outcome cannot be recorded stays ``running`` under this worker
        and is delivered again once the worker is gone (at least once).
        """
        for attempt in range(FINISH_TRIES):
            try:
                await self.store.finish_delivery(
                    work.id, self.worker_id, status, self.clock.now(), **details
                )
                return
            except StoreError:
                logger.exception("delivery_finish_failed", delivery=work.id, attempt=attempt + 1)
                await self.clock.sleep(backoff(attempt + 1, RETRY_INTERVAL, RETRY_CAP))
