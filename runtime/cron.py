"""Cron expressions and the daylight-saving policy; the only module that imports croniter.

Expressions have 5 fields, or 6 with seconds first (as Medusa and node-cron
write them: ``*/10 * * * * *`` is every ten seconds). They are matched against
the wall clock of the schedule's timezone. Daylight saving:

- An expression with a **fixed hour** (the hour field is a number, list or
  range, as in ``30 2 * * *``): a wall time that does not exist (the clock
  jumps over it) fires once, at the instant of the jump; a wall time that
  occurs twice fires once, at its first occurrence (Debian cron's behaviour).
- An expression with a **wildcard hour** (``*`` or ``*/n``, as in
  ``*/15 * * * *``) follows elapsed time: wall times inside a jump do not
  exist and are not fired, and a repeated hour is fired in both occurrences,
  so firings stay evenly spaced in real time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from runtime.errors import DefinitionError
from runtime.limits import shown

# The number of values of each field (seconds first when there are 6): a step must
# not be larger, or it can only ever pick the field's first value.
_FIELDS = {
    "second": 60,
    "minute": 60,
    "hour": 24,
    "day of month": 31,
    "month": 12,
    "day of week": 7,
}

# Where the "can it ever fire" probe starts: croniter gives up (CroniterBadDateError)
# when no date in the next decades matches, e.g. 30 February.
_PROBE_FROM = datetime(2001, 1, 1, tzinfo=UTC)

# Wall-clock shifts are at most a few hours; candidates this far past the best
# instant found so far cannot map to an earlier instant.
_SHIFT = timedelta(hours=3)


def timezone(name: str) -> tzinfo:
    """The IANA timezone ``name``, or a :class:`DefinitionError` saying it is unknown."""
    if not isinstance(name, str):
        raise DefinitionError(f"a timezone must be an IANA name such as 'UTC', got {shown(name)}")
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DefinitionError(
            f"unknown timezone {name!r}: use an IANA name such as 'UTC' or 'America/New_York'"
        ) from exc


class CronSchedule:
    """A validated cron expression in a timezone.

    Raises:
        DefinitionError: the expression or the timezone is invalid, with the reason.
    """

    __slots__ = ("expression", "fixed_hour", "seconds", "tz", "tz_name")

    def __init__(self, expression: str, tz_name: str = "UTC") -> None:
        if not isinstance(expression, str):
            raise DefinitionError(f"a cron expression must be a string, got {shown(expression)}")
        fields = expression.split()
        if len(fields) not in (5, 6):
            raise DefinitionError(
                f"cron expression {expression!r} has {len(fields)} fields; use 5 "
                "(minute hour day month weekday) or 6 with seconds first"
            )
        self.seconds = len(fields) == 6
        try:
            valid = croniter.is_valid(expression, second_at_beginning=self.seconds)
        except Exception:  # croniter raises assorted errors for odd input
            valid = False
        if not valid:
            raise DefinitionError(f"cron expression {expression!r} is not valid")
        _check_steps(expression, fields)
        try:
            croniter(expression, _PROBE_FROM, second_at_beginning=self.seconds).get_next(datetime)
        except CroniterBadDateError:
            raise DefinitionError(
                f"cron expression {expression!r} can never fire (no date matches its day "
                "and month fields)"
            ) from None
        hour = fields[2 if self.seconds else 1]
        self.fixed_hour = not (hour == "*" or hour.startswith("*/"))
        self.expression = " ".join(fields)
        self.tz_name = tz_name
        self.tz = timezone(tz_name)

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression!r}, {self.tz_name!r})"

    def next_after(self, after: datetime) -> datetime:
        """The first firing strictly after ``after`` (aware), as an aware UTC datetime."""
        if after.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        after = after.astimezone(UTC)
        wall_after = after.astimezone(self.tz).replace(tzinfo=None)
        # Wall times before ``after``'s can map to later instants only when the clock
        # is turned back soon after it; only then does the search start earlier.
        start = wall_after if self._steady(after) else wall_after - _SHIFT
        it = croniter(self.expression, start, second_at_beginning=self.seconds)
        best: datetime | None = None
        while True:
            wall: datetime = it.get_next(datetime)
            # Done when no later wall time can map to an earlier instant than ``best``:
            # the clock is not turned back around it, or we are past any such fold.
            if best is not None and (
                (self._steady(best - _SHIFT) and self._steady(best))
                or wall > best.astimezone(self.tz).replace(tzinfo=None) + _SHIFT
            ):
                return best
            for instant in self._instants(wall):
                if instant > after and (best is None or instant < best):
                    best = instant

    def _steady(self, moment: datetime) -> bool:
        """True when the clock is not turned back within the next few hours of ``moment``.

        Then wall times map to instants in order, and the first match is the earliest.
        """
        offset = moment.astimezone(self.tz).utcoffset()
        return offset == (moment + _SHIFT).astimezone(self.tz).utcoffset() or (
            offset is not None
            and (later := (moment + _SHIFT).astimezone(self.tz).utcoffset()) is not None
            and later > offset
        )

    def firings_between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """Firings in ``(start, end]``, oldest first, at most ``limit`` (the latest kept)."""
        found: list[datetime] = []
        moment = start
        while True:
            moment = self.next_after(moment)
            if moment > end:
                return found
            found.append(moment)
            if len(found) > limit:
                found.pop(0)

    def _instants(self, wall: datetime) -> list[datetime]:
        """The real instants a wall-clock time stands for, under the DST policy."""
        first = wall.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        exists = first.astimezone(self.tz).replace(tzinfo=None) == wall
        if not exists:  # inside a jump forward
            return (
                [self._jump_instant(wall, min(first, second), max(first, second))]
                if (self.fixed_hour)
                else []
            )
        if first != second:  # a repeated wall time
            return [min(first, second)] if self.fixed_hour else sorted({first, second})
        return [first]

    def _jump_instant(self, wall: datetime, low: datetime, high: datetime) -> datetime:
        """The instant the clock jumped over ``wall``: the first one whose wall time is later."""
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if middle.astimezone(self.tz).replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle
        return high.replace(microsecond=0)


def _check_steps(expression: str, fields: list[str]) -> None:
    """Refuse a step (``*/n``) larger than its field's range, such as ``*/61`` for minutes."""
    names = list(_FIELDS.items())[0 if len(fields) == 6 else 1 :]
    for (what, size), field in zip(names, fields, strict=True):
        for part in field.split(","):
            _, slash, step = part.partition("/")
            if slash and step.isdigit() and not 1 <= int(step) <= size:
                raise DefinitionError(
                    f"cron expression {expression!r}: the step /{step} of the {what} field is "
                    f"out of range (1 to {size})"
                )
