"""The default clock takes the database server's time: leases and due times are judged on
one clock whichever host a process runs on (docs/postgresql.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from structlog.testing import capture_logs

from runtime.clock import AlignedClock
from runtime.store import align_clock
from runtime.store.base import Store


class ServerAhead:
    """A store whose server's clock runs ``ahead`` of this host's."""

    def __init__(self, ahead: timedelta | None) -> None:
        self.ahead = ahead

    async def database_time(self) -> datetime | None:
        return None if self.ahead is None else datetime.now(UTC) + self.ahead


async def test_the_clock_takes_the_servers_time_and_says_when_the_host_is_off() -> None:
    clock = AlignedClock()
    with capture_logs() as logs:
        await align_clock(clock, ServerAhead(timedelta(hours=1)))  # type: ignore[arg-type]
    assert abs(clock.offset - timedelta(hours=1)) < timedelta(seconds=1)
    assert abs(clock.now() - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(seconds=1)
    assert [entry["event"] for entry in logs] == ["host_clock_skewed"]


async def test_a_database_with_no_clock_leaves_the_hosts() -> None:
    clock = AlignedClock()
    store: Store = ServerAhead(None)  # type: ignore[assignment]
    with capture_logs() as logs:
        await align_clock(clock, store)
    assert clock.offset == timedelta(0)
    assert logs == []
