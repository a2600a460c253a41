"""When a customer is created, greet them with the hello-world workflow (seed 000).

The smallest subscriber there is: a module in ``subscribers/`` that exports an
async ``handler`` and a ``config``. ``runtime start`` finds it, and from then on
every ``customer.created`` event reaches the handler, however it was emitted::

    runtime emit customer.created --data '{"first_name": "Ada"}'

The seed's ``hello-world`` workflow takes a ``name``; here that is
``hello-world-two-steps`` (``workflows/hello_world.py``), whose step two greets it.

Events are delivered at least once, so a handler may run twice for one event
(after a crash, or a retry). That is safe here: a run started inside a handler
without a ``transaction_id`` gets one derived from the subscriber, the event and
the workflow, so a second delivery finds the first run instead of starting another.
"""

from __future__ import annotations

from runtime import SubscriberArgs, SubscriberConfig
from workflows.hello_world import hello_world_two_steps


async def handler(args: SubscriberArgs) -> None:
    """Run the workflow with the new customer's first name and log its message."""
    result = await hello_world_two_steps(args.container).run(
        input={"name": args.event.data["first_name"]}
    )
    # The seed prints the result; `args.logger` already carries the event and subscriber.
    args.logger.info("customer_greeted", message=result.result["message"], run_id=result.run_id)


config = SubscriberConfig(event="customer.created", subscriber_id="hello-customer")
