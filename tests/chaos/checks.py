"""What a chaos campaign left behind, and the checks that judge it.

:func:`load_evidence` reads the three witnesses: the operations the load generator
had accepted (its own file), the execution log the chaos project's code fsyncs line
by line (``tests/chaos/project/workflows/_chaoslog.py``), and the database (either backend).
:func:`judge` counts every violation of the promises (nothing lost, nothing stuck,
no finished step or compensation repeated, compensations once each and in DESIGN 2.3
order, no cron duplicate) and describes each one.

Telling a repeat from an allowed re-execution:

- A step's ``done`` line carries a fresh nonce that the step also returns, so the
  stored output names the one execution whose checkpoint committed. Another ``done``
  for that step *after* that line ran a finished step again (a violation); one
  *before* it is an execution whose process was killed before its checkpoint
  committed (allowed: at least once), unless it is from the committing process itself.
- A compensation (or a job's handler) has no stored output. A second ``done`` is
  allowed only when the process that logged the earlier one was killed and wrote
  nothing more for that run after it: the kill fell between the work and its
  checkpoint. Anything else ran it twice.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tests.helpers.databases import Database

SAGA, SAGA_STEPS = "chaos-saga", ("reserve", "price", "charge", "pack", "ship")
DURABLE, DURABLE_STEPS = "chaos_durable", ("open", "debit", "credit", "notify", "settle", "close")
BEAT, TICK = "chaos-beat", "job-tick"
SUBSCRIBERS = {"orders": "order.placed", "signups": "user.signed_up", "audit": "*"}
STARTED_BY = {"order.placed": ("orders", SAGA), "user.signed_up": ("signups", DURABLE)}
TERMINAL = {"completed", "failed", "compensation_failed", "canceled"}

VIOLATIONS = (
    "events_lost",
    "deliveries_dead",
    "deliveries_stuck",
    "runs_lost",
    "runs_stuck",
    "runs_wrong_outcome",
    "staged_events_wrong",
    "steps_repeated",
    "steps_unaccounted",
    "compensations_missing",
    "compensations_repeated",
    "compensations_unexpected",
    "compensations_out_of_order",
    "cron_duplicates",
    "unclean_exit",
)


@dataclasses.dataclass
class Evidence:
    """Everything the campaign's processes left behind.

    Attributes:
        ops: the load generator's accepted operations (``op``, ``name``, ``key``,
            ``data``, ``id``), in order.
        log: the execution log's lines, in the order they were written.
        runs: run id -> ``workflow``, ``key``, ``status``, ``input``, ``output``, ``created_at``.
        steps: (run id, step name) -> ``status``, ``output``.
        events: event id -> ``name``, ``key``, ``source_run_id``.
        deliveries: (event id, subscriber id) -> ``status``, ``attempts``.
        firings: (schedule, nominal time) -> ``outcome``, ``run_id``.
        killed: the pids of the services killed with SIGKILL -> the kill's number (1, 2...).
        cutoff: ISO UTC time the load stopped: every run created before must be terminal.
    """

    ops: list[dict[str, Any]]
    log: list[dict[str, Any]]
    runs: dict[str, dict[str, Any]]
    steps: dict[tuple[str, str], dict[str, Any]]
    events: dict[str, dict[str, Any]]
    deliveries: dict[tuple[str, str], dict[str, Any]]
    firings: dict[tuple[str, str], dict[str, Any]]
    killed: dict[int, int]
    cutoff: str


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def read_lines(path: Path) -> list[dict[str, Any]]:
    """JSON lines of a file; a line a kill cut short cannot be whole JSON and is skipped."""
    if not path.exists():
        return []
    lines = []
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            continue
    return lines


def load_evidence(
    db: Database, log: Path, ops: Path, killed: dict[int, int], cutoff: str
) -> Evidence:
    """Read the database (plain ``SELECT``s), the execution log and the operations file."""
    runs = {
        row[0]: {
            "workflow": row[1],
            "key": row[2],
            "status": row[3],
            "input": _json(row[4]),
            "output": _json(row[5]),
            "created_at": row[6],
        }
        for row in db.query(
            "SELECT id, workflow, idempotency_key, status, input, output, created_at FROM runs"
        )
    }
    steps = {
        (run_id, name): {"status": status, "output": _json(output)}
        for run_id, name, status, output in db.query(
            "SELECT run_id, name, status, output FROM steps"
        )
    }
    events = {
        id: {"name": name, "key": key, "source_run_id": source}
        for id, name, key, source in db.query(
            "SELECT id, name, idempotency_key, source_run_id FROM events"
        )
    }
    deliveries = {
        (event_id, subscriber): {"status": status, "attempts": attempts}
        for event_id, subscriber, status, attempts in db.query(
            "SELECT event_id, subscriber_id, status, attempts FROM deliveries"
        )
    }
    firings = {
        (schedule, nominal): {"outcome": outcome, "run_id": run_id}
        for schedule, nominal, outcome, run_id in db.query(
            "SELECT schedule, nominal_at, outcome, run_id FROM schedule_firings"
        )
    }
    return Evidence(
        ops=read_lines(ops),
        log=read_lines(log),
        runs=runs,
        steps=steps,
        events=events,
        deliveries=deliveries,
        firings=firings,
        killed=killed,
        cutoff=cutoff,
    )


def subscribers_of(event_name: str) -> list[str]:
    """The chaos project's subscribers an event is routed to."""
    return [s for s, pattern in SUBSCRIBERS.items() if pattern in ("*", event_name)]


def expected_compensations(workflow: str, input: dict[str, Any]) -> list[str] | None:
    """The compensations a run must run, in order (DESIGN 2.3); ``None``: it must complete."""
    fail_at = input.get("fail_at")
    if fail_at is None:
        return None
    steps = SAGA_STEPS if workflow == SAGA else DURABLE_STEPS
    return [steps[i] for i in range(fail_at, -1, -1)]  # the failing step's own first


class Judge:
    """Counts and describes the violations in one :class:`Evidence`."""

    def __init__(self, evidence: Evidence, describe: int = 20) -> None:
        self.e = evidence
        self.counts: Counter[str] = Counter({name: 0 for name in VIOLATIONS})
        self.details: list[str] = []
        self._describe = describe
        self.by_run: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        for position, line in enumerate(evidence.log):
            if line.get("run_id"):
                self.by_run[line["run_id"]].append((position, line))

    def flag(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        if len(self.details) < self._describe:
            self.details.append(f"{kind}: {detail}")

    # -- repeats ---------------------------------------------------------------

    def _excused(self, run_id: str, position: int, pid: int) -> bool:
        """Was the process that wrote line ``position`` killed before its next line for the run?"""
        if pid not in self.e.killed:
            return False
        return not any(
            p > position and line["pid"] == pid for p, line in self.by_run.get(run_id, [])
        )

    def _repeats(self, run_id: str, dones: list[tuple[int, dict[str, Any]]]) -> int:
        """How many of ``dones`` (a compensation's or a handler's) are not allowed re-runs."""
        return sum(
            1
            for position, line in dones[:-1]
            if not self._excused(run_id, position, line["pid"])
            or line["pid"] == dones[-1][1]["pid"]
        )

    def trail(self, lines: list[tuple[int, dict[str, Any]]]) -> str:
        """Log lines as ``fail charge (pid 12, kill 3), start charge (pid 14)...``."""

        def one(line: dict[str, Any]) -> str:
            kill = self.e.killed.get(line["pid"])
            killed = f", kill {kill}" if kill is not None else ""
            return f"{line['phase']} {line['step']} (pid {line['pid']}{killed})"

        return ", ".join(one(line) for _, line in lines)

    # -- the checks --------------------------------------------------------------

    def events(self) -> None:
        """Every accepted emit is stored and delivered, once handled, to each subscriber."""
        handled = {
            (line["event_id"], line["subscriber"])
            for line in self.e.log
            if line.get("kind") == "handler" and line.get("phase") == "done"
        }
        emitted = [op for op in self.e.ops if op["op"] == "emit"]
        staged = [id for id, ev in self.e.events.items() if ev["source_run_id"]]
        for op in emitted:
            event = self.e.events.get(op["id"])
            if event is None or event["key"] != op["key"] or event["name"] != op["name"]:
                self.flag("events_lost", f"event {op['id']} ({op['key']}) is not stored")
        pairs = [(op["id"], op["name"]) for op in emitted]
        pairs += [(id, self.e.events[id]["name"]) for id in staged]
        for event_id, name in pairs:
            for subscriber in subscribers_of(name):
                delivery = self.e.deliveries.get((event_id, subscriber))
                status = delivery and delivery["status"]
                if status == "dead":
                    self.flag("deliveries_dead", f"{subscriber} of {event_id} is dead")
                elif status in ("pending", "running"):
                    self.flag("deliveries_stuck", f"{subscriber} of {event_id} is {status}")
                elif status != "done":
                    self.flag("events_lost", f"{subscriber} of {event_id}: no delivery")
                elif (event_id, subscriber) not in handled:
                    self.flag("events_lost", f"{subscriber} of {event_id}: done, never handled")

    def runs(self) -> None:
        """Every accepted run and every run a subscriber starts exists and is terminal."""
        by_key = {(r["workflow"], r["key"]): id for id, r in self.e.runs.items()}
        for op in self.e.ops:
            if op["op"] == "run":
                found = self.e.runs.get(op["id"])
                if found is None or found["key"] != op["key"]:
                    self.flag("runs_lost", f"run {op['id']} ({op['key']}) is not stored")
            else:  # once the subscriber that starts it is done with the event
                subscriber, workflow = STARTED_BY[op["name"]]
                delivery = self.e.deliveries.get((op["id"], subscriber)) or {}
                key = (workflow, f"{subscriber}:{op['id']}:{workflow}")
                if delivery.get("status") == "done" and key not in by_key:
                    self.flag("runs_lost", f"no {workflow} run for event {op['id']}")
        for id, run in self.e.runs.items():
            if run["status"] not in TERMINAL and run["created_at"] < self.e.cutoff:
                self.flag("runs_stuck", f"{run['workflow']} run {id} is {run['status']}")

    def outcomes(self) -> None:
        """Sagas end as their input says; a completed saga publishes its event once."""
        published = Counter(ev["source_run_id"] for ev in self.e.events.values())
        for id, run in self.e.runs.items():
            if run["workflow"] not in (SAGA, DURABLE) or run["status"] not in TERMINAL:
                continue
            expected = expected_compensations(run["workflow"], run["input"])
            want = "completed" if expected is None else "failed"
            if run["status"] != want:
                self.flag("runs_wrong_outcome", f"{id} is {run['status']}, expected {want}")
                continue
            if want == "completed":
                steps = SAGA_STEPS if run["workflow"] == SAGA else DURABLE_STEPS
                nonces = [(self.e.steps.get((id, s)) or {}).get("output") for s in steps]
                stored = [n and n.get("nonce") for n in nonces]
                if run["output"] != {"key": run["input"]["key"], "nonces": stored}:
                    self.flag("runs_wrong_outcome", f"{id}: output {run['output']} != {stored}")
            events = published.get(id, 0)
            should = 1 if (run["workflow"], want) == (SAGA, "completed") else 0
            if events != should:
                self.flag("staged_events_wrong", f"{id} ({want}) published {events} events")

    def steps(self) -> None:
        """No finished step ran again after its checkpoint; every checkpoint ran once."""
        dones: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        for position, line in enumerate(self.e.log):
            if line.get("kind") == "step" and line.get("phase") == "done":
                dones[(line["run_id"], line["step"])].append((position, line))
        for key, lines in dones.items():
            stored = (self.e.steps.get(key) or {}).get("output")
            nonce = stored.get("nonce") if isinstance(stored, dict) else None
            kept = [i for i, (_, line) in enumerate(lines) if line["nonce"] == nonce]
            if not kept:
                self.flag("steps_unaccounted", f"{key}: ran {len(lines)}x, checkpoint {stored}")
                continue
            committer = lines[kept[0]][1]["pid"]
            after = len(lines) - kept[0] - 1
            same = sum(1 for _, line in lines[: kept[0]] if line["pid"] == committer)
            if after or same:
                self.flag("steps_repeated", f"{key}: ran again after its checkpoint ({lines})")
        for (run_id, name), step in self.e.steps.items():
            output = step["output"]
            if isinstance(output, dict) and "nonce" in output and (run_id, name) not in dones:
                self.flag("steps_unaccounted", f"{(run_id, name)}: checkpoint with no execution")

    def compensations(self) -> None:
        """Each expected compensation completed once, in DESIGN 2.3 order; no others."""
        for id, run in self.e.runs.items():
            if run["workflow"] not in (SAGA, DURABLE) or run["status"] not in TERMINAL:
                continue  # a run still going is counted as stuck
            expected = expected_compensations(run["workflow"], run["input"]) or []
            lines = [(p, line) for p, line in self.by_run.get(id, []) if line["kind"] == "comp"]
            # What the log shows of the rollback: the failure, then the compensations.
            shown = [
                (p, line)
                for p, line in self.by_run.get(id, [])
                if line["kind"] == "comp" or (line["kind"], line["phase"]) == ("step", "fail")
            ]
            for _, line in lines:
                if line["step"] not in expected:
                    self.flag("compensations_unexpected", f"{id}: {line['step']} compensated")
                    break
            done_at: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
            for position, line in lines:
                if line["phase"] == "done":
                    done_at[line["step"]].append((position, line))
            for name in expected:
                stored = (self.e.steps.get((id, name)) or {}).get("status")
                if not done_at[name] or stored != "compensated":
                    self.flag(
                        "compensations_missing",
                        f"{id}: {name} (stored {stored}); log: {self.trail(shown)}",
                    )
                elif self._repeats(id, done_at[name]):
                    self.flag("compensations_repeated", f"{id}: {name}; log: {self.trail(shown)}")
            for position, line in lines:
                if line["phase"] != "start" or line["step"] not in expected:
                    continue
                before = expected[: expected.index(line["step"])]
                if any(not done_at[n] or done_at[n][0][0] > position for n in before):
                    self.flag(
                        "compensations_out_of_order",
                        f"{id}: expected {expected}, log: {self.trail(shown)}",
                    )
                    break

    def cron(self) -> None:
        """Each (schedule, nominal time) was handled by one run, once."""
        nominal_of = {
            id: run["key"].removeprefix("schedule:tick:")
            for id, run in self.e.runs.items()
            if run["workflow"] == TICK
        }
        handlers: dict[tuple[str, str], set[str]] = defaultdict(set)
        job_dones: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        for position, line in enumerate(self.e.log):
            if (
                line.get("kind") == "step"
                and line.get("step") == "beat"
                and line["phase"] == "done"
            ):
                handlers[(BEAT, line["nominal"])].add(line["run_id"])
            elif line.get("kind") == "job":
                job_dones[line["run_id"]].append((position, line))
                nominal = nominal_of.get(line["run_id"], f"? run {line['run_id']}")
                handlers[("tick", nominal)].add(line["run_id"])
        for (schedule, nominal), runs in handlers.items():
            if len(runs) > 1:
                self.flag("cron_duplicates", f"{schedule} at {nominal}: runs {sorted(runs)}")
        for run_id, dones in job_dones.items():
            if self._repeats(run_id, dones):
                self.flag("cron_duplicates", f"tick run {run_id} handled {len(dones)}x")


def judge(evidence: Evidence, exit_code: int | None) -> tuple[dict[str, int], list[str]]:
    """The violation counts (every name in :data:`VIOLATIONS`) and the first descriptions."""
    j = Judge(evidence)
    j.events()
    j.runs()
    j.outcomes()
    j.steps()
    j.compensations()
    j.cron()
    if exit_code != 0:
        j.flag("unclean_exit", f"the last service exited with {exit_code} on SIGTERM")
    return dict(j.counts), j.details


def figures(evidence: Evidence) -> dict[str, Any]:
    """What the campaign did: operations, events, deliveries, runs by workflow and status."""
    statuses: Counter[str] = Counter(run["status"] for run in evidence.runs.values())
    workflows: Counter[str] = Counter(run["workflow"] for run in evidence.runs.values())
    outcomes: Counter[str] = Counter(f["outcome"] for f in evidence.firings.values())
    comps = sum(
        1 for line in evidence.log if line.get("kind") == "comp" and line["phase"] == "done"
    )
    return {
        "operations": len(evidence.ops),
        "events": len(evidence.events),
        "deliveries": len(evidence.deliveries),
        "runs": len(evidence.runs),
        "runs_by_workflow": dict(sorted(workflows.items())),
        "completed": statuses.get("completed", 0),
        "failed": statuses.get("failed", 0),
        "other_statuses": {s: n for s, n in statuses.items() if s not in ("completed", "failed")},
        "compensations_run": comps,
        "cron_firings": dict(sorted(outcomes.items())),
        "log_lines": len(evidence.log),
    }
