"""When a customer signs up, register them: customer, log-in, group, welcome e-mail (seed 002).

Seed 002 lists customer registration among its event-driven workflows: the
sign-up form is posted, the web app emits an event and answers at once, and
this subscriber runs the ``customer-registration`` workflow
(``workflows/customer_registration.py``) in the background::

    await client.emit("customer.registered", {
        "email": "ada@example.com", "password": "correct horse",
        "first_name": "Ada", "last_name": "Lovelace",
    })

The event's data is the form, password included, and events and run inputs are
stored in the database as they are. That keeps the example close to the seed;
in a real application hash the password in the web app (or create the log-in
there) and leave it out of the event.

A registration that fails (the e-mail is taken, the password is too short) is
rolled back by the workflow and ends ``failed``; the handler logs it and returns,
because delivering the same form again would fail the same way.
"""

from __future__ import annotations

from runtime import RunStatus, SubscriberArgs, SubscriberConfig
from workflows.customer_registration import customer_registration


async def handler(args: SubscriberArgs) -> None:
    """Run the registration workflow on the submitted form."""
    form = args.event.data
    result = await customer_registration(args.container).run(input=form, throw_on_error=False)
    if result.status is RunStatus.COMPLETED:
        args.logger.info(
            "customer_registered",
            customer_id=result.result["customer"]["id"],
            run_id=result.run_id,
        )
    else:
        # Never log the form itself: it holds the password.
        errors = [f"{e.step}: {e.message}" for e in result.errors]
        args.logger.warning("customer_registration_failed", run_id=result.run_id, errors=errors)


config = SubscriberConfig(event="customer.registered", subscriber_id="customer-registration")
