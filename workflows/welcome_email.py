"""The welcome e-mail: Sonamu's first workflow, in two versions, started from an API handler.

A durable workflow is an ``async def`` that takes a :class:`~runtime.WorkflowContext`
and does its side effects through ``ctx.step``. ``@workflow`` turns it into a
definition; the name is given here because two functions share it (left out,
it is the function's name in snake_case).

**The first version** sends a plain-text e-mail in one step called ``send_email``.
The step's result is stored with the run, so a run that is interrupted after the
step (a crash, a deploy) never sends the e-mail twice.

**Versions.** The welcome e-mail became HTML. Changing the function in place
would change the behaviour of runs already under way, so version ``v2`` is a
second definition under the same name, next to the first::

    handle = await rt.workflows.run("send_welcome_email", {"email": "ada@example.com"})
    # no version given: the newest one, v2 (natural order: v10 > v2 > v1)

    handle = await rt.workflows.run("send_welcome_email", {...}, version="v1")
    # an explicit version, e.g. for a caller not migrated yet

A run keeps the version it started with for its whole life: a ``v1`` run that
is sleeping or paused when ``v2`` is deployed still finishes on ``v1``'s code.
So delete ``send_welcome_email_v1`` only once no ``v1`` run is left
(``rt.workflows.list_runs(workflow="send_welcome_email", status=[...])``).
Sonamu writes the same thing as one function that branches on
``ctx.version``; two functions say it without an ``if``.

**Running from an API handler.** :func:`register` saves a user and starts the
workflow in the background: ``rt.workflows.run`` stores the run and returns at
once, and a worker sends the e-mail. The handler never waits for the result
(``await handle.result()`` is for scripts and tests).
"""

from __future__ import annotations

from pydantic import BaseModel

from runtime import Container, WorkflowContext, workflow

WELCOME_SUBJECT = "Welcome!"


class WelcomeInput(BaseModel):
    """Who to welcome."""

    email: str


def _plain_body(email: str) -> str:
    return f"Hello {email}, thanks for signing up."


def _html_body(email: str) -> str:
    return f"<h1>Welcome!</h1><p>Hello {email}, thanks for signing up.</p>"


@workflow(name="send_welcome_email", version="v1", input=WelcomeInput)
async def send_welcome_email_v1(ctx: WorkflowContext[WelcomeInput]) -> dict[str, bool]:
    """Version 1: a plain-text welcome e-mail."""
    ctx.logger.info("sending_welcome_email", email=ctx.input.email, version=ctx.version)
    email = ctx.container.resolve("email")
    await ctx.step(
        "send_email",
        email.send_email,
        ctx.input.email,
        WELCOME_SUBJECT,
        _plain_body(ctx.input.email),
    )
    return {"success": True}


@workflow(name="send_welcome_email", version="v2", input=WelcomeInput)
async def send_welcome_email(ctx: WorkflowContext[WelcomeInput]) -> dict[str, bool]:
    """Version 2 (the newest, so the default): an HTML welcome e-mail."""
    ctx.logger.info("sending_welcome_email", email=ctx.input.email, version=ctx.version)
    email = ctx.container.resolve("email")
    await ctx.step(
        "send_html_email",
        email.send_html_email,
        ctx.input.email,
        WELCOME_SUBJECT,
        _html_body(ctx.input.email),
    )
    return {"success": True}


async def register(container: Container, email: str, password: str) -> int:
    """An API handler: save the user, start the welcome e-mail, return at once.

    Args:
        container: the runtime's container (``workflows`` and ``users`` are in it).
        email: the new user's e-mail address.
        password: their password (kept hashed by the user service).

    Returns:
        The new user's id; the e-mail is sent in the background.
    """
    user_id: int = await container.resolve("users").register(email, password)
    # No version: the newest. The run is stored before this returns, so it is not
    # lost if the process stops right after; a worker picks it up.
    await container.resolve("workflows").run("send_welcome_email", {"email": email})
    return user_id
