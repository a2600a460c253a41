"""A project folder for the API's tests, and a database seeded by its service.

The project is files, loaded as ``runtime start`` and :func:`runtime.web.create_app`
load one: a durable workflow with an input schema (``onboard``), a composition saga
(``order``), a subscriber that succeeds and one that always fails (so a delivery goes
dead), and a job. :func:`seed` runs the service on the database until it holds a
completed run, a failed one whose compensations ran, a durable run asleep (so it can be
paused), a run queued for later, an event with a dead delivery and a firing-less job;
then the service stops and nothing moves under a test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runtime import Runtime
from runtime.models import RunStatus
from tests.helpers.postgres import new_schema
from tests.helpers.waiting import wait_delivery, wait_status

TOKEN = "api-test-token-0123456789"
"""The app's token in the API's tests."""

SIGNED = {"Authorization": f"Bearer {TOKEN}"}

LATER = 3600.0
"""A start delay that keeps a queued run pending for the whole test."""

ONBOARD = """
from pydantic import BaseModel, Field
from runtime import WorkflowContext, workflow


class Signup(BaseModel):
    email: str = Field(min_length=3)
    plan: str = "free"


async def send(email: str) -> str:
    return f"sent to {email}"


@workflow(name="onboard", input=Signup)
async def onboard(ctx: WorkflowContext[Signup]) -> dict:
    await ctx.step("welcome_email", send, ctx.input.email)
    await ctx.sleep("wait_a_day", 86400)
    await ctx.step("follow_up", send, ctx.input.email)
    return {"onboarded": ctx.input.email}
"""

ORDER = """
from runtime import WorkflowResponse, create_step, create_workflow


async def _reserve(order):
    return {"reservation": "r-" + str(order["id"])}


async def _release(reservation):
    return None


async def _ship(order):
    if not order.get("address"):
        raise ValueError("order " + str(order["id"]) + " has no shipping address")
    return "shipped " + str(order["id"])


reserve = create_step("reserve", _reserve, compensate=_release)
ship = create_step("ship", _ship)
order = create_workflow("order", lambda o: WorkflowResponse([reserve(o), ship(o)]))
"""

WELCOME = """
from runtime.sdk.specs import SubscriberArgs, SubscriberConfig


async def handler(args: SubscriberArgs) -> None:
    return None


config = SubscriberConfig(event="customer.created", subscriber_id="welcome")
"""

CRM = """
from runtime.sdk.specs import SubscriberArgs, SubscriberConfig


async def handler(args: SubscriberArgs) -> None:
    raise ConnectionError("crm.example.com refused the connection")


config = SubscriberConfig(event="customer.*", subscriber_id="sync-crm", max_attempts=1)
"""

CLEANUP = """
from runtime.sdk.specs import JobConfig


async def handler(container) -> None:
    return None


config = JobConfig(name="cleanup", schedule="0 2 * * *")
"""

FILES = {
    "workflows/onboard.py": ONBOARD,
    "workflows/order.py": ORDER,
    "subscribers/welcome.py": WELCOME,
    "subscribers/crm.py": CRM,
    "jobs/cleanup.py": CLEANUP,
    "runtime.toml": '[runtime]\ndatabase = "sqlite:///app.db"\n',
}


@contextmanager
def database(backend: str, folder: Path) -> Iterator[str]:
    """A fresh database's URL: a file in ``folder``, or a PostgreSQL schema of its own."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'app.db'}"
    else:
        with new_schema() as url:
            yield url


def write_project(folder: Path) -> Path:
    """The project's files in ``folder``; ``folder``."""
    for name, text in FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


@dataclasses.dataclass(frozen=True)
class Seeded:
    """The ids :func:`seed` made."""

    completed: str
    failed: str
    sleeping: str
    queued: str
    event: str
    dead_delivery: str


async def seed(folder: Path, url: str) -> Seeded:
    """Runs, an event and a dead delivery on ``url``, by the project's service (bounded)."""
    async with Runtime.from_project(folder, database=url) as rt:
        done = await rt.workflows.run("order", {"id": 1, "address": "1 Main St"})
        failed = await rt.workflows.run("order", {"id": 2})
        sleeping = await rt.workflows.run("onboard", {"email": "ada@example.com"})
        queued = await rt.workflows.run("order", {"id": 3}, delay=LATER)
        await wait_status(rt, done.run_id, RunStatus.COMPLETED)
        await wait_status(rt, failed.run_id, RunStatus.FAILED)
        await wait_status(rt, sleeping.run_id, RunStatus.SLEEPING)
        event_id = await rt.emit("customer.created", {"id": "c-7", "first_name": "Ada"})
        dead = await wait_delivery(rt, event_id, "sync-crm")
        await wait_delivery(rt, event_id, "welcome")
    return Seeded(done.run_id, failed.run_id, sleeping.run_id, queued.run_id, event_id, dead.id)
