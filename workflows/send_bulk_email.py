"""Bulk e-mail: one step per recipient, so a failure retries only who is left.

Sending to thousands of users does not fit in an API request; a workflow
runs in the background, for as long as it takes. The users are fetched in
one step, then each e-mail is its own step, named after its user
(``send_email_1``, ``send_email_2``, ...):

- the run's steps show, live, who has been mailed;
- if the provider fails at user 3, the run fails there, and
  ``rt.workflows.retry(run_id)`` carries on from user 3: users 1 and 2 have a
  completed step and are not mailed again.

Step names and their order must be the same every time the function runs (it
is replayed from the top after a crash, a pause or a retry, and each step's
name is checked against the record at its position). Here the order comes
from the ``fetch_users`` step, whose result is stored, and the user service
returns users by increasing id; so the loop is the same on every replay.

Run it::

    await rt.workflows.run("send_bulk_email",
                           {"user_ids": [1, 2, 3], "subject": "News", "body": "..."})
"""

from __future__ import annotations

from pydantic import BaseModel

from runtime import WorkflowContext, workflow


class BulkEmailInput(BaseModel):
    """Who gets the message, and the message."""

    user_ids: list[int]
    subject: str
    body: str


@workflow(name="send_bulk_email", input=BulkEmailInput)
async def send_bulk_email(ctx: WorkflowContext[BulkEmailInput]) -> dict[str, int]:
    """Fetch the users, then mail each one in a step of their own."""
    ctx.logger.info("sending_bulk_email", count=len(ctx.input.user_ids))
    users_service, email = ctx.container.resolve("users"), ctx.container.resolve("email")
    users = await ctx.step("fetch_users", users_service.find_many, ctx.input.user_ids)
    for user in users:
        await ctx.step(
            f"send_email_{user['id']}",
            email.send_email,
            user["email"],
            ctx.input.subject,
            ctx.input.body,
        )
    return {"sent": len(users)}
