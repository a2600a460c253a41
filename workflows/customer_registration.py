"""Customer registration: create a customer, their log-in and group, then welcome them.

Seed 002's customer registration workflow, with two changes a rollback calls for:

- Every step that writes has a compensation (the seed's have none), so a failed
  registration leaves no half-made customer behind.
- The welcome e-mail is sent last, after the customer-group assignment: an e-mail
  cannot be taken back, so every step that may still fail runs before it. The
  log-in and the group assignment do not depend on each other, so they run
  together with ``parallelize``.

In Medusa an API route or a subscriber starts this workflow; those come with the
HTTP layer and the event bus. Until then, run it from code::

    result = await customer_registration(container).run(input={
        "email": "ada@example.com", "password": "correct horse",
        "first_name": "Ada", "last_name": "Lovelace",
    })
"""

from __future__ import annotations

from typing import Any, TypedDict

from runtime import (
    StepContext,
    StepResponse,
    WorkflowResponse,
    create_step,
    create_workflow,
    parallelize,
)

DEFAULT_GROUP = "default_customers"
"""The customer group every new customer joins."""


class WorkflowInput(TypedDict):
    """A registration form."""

    email: str
    password: str
    first_name: str
    last_name: str


class CustomerData(TypedDict):
    """The validated form, without the password."""

    email: str
    first_name: str
    last_name: str


@create_step("validate-customer-data")
async def validate_customer_data(input: WorkflowInput, ctx: StepContext) -> StepResponse:
    """Refuse an e-mail address already taken and a password that is too short."""
    customers = ctx.container.resolve("customers")
    if await customers.retrieve_by_email(input["email"]) is not None:
        raise ValueError("Customer with this email already exists")
    if len(input["password"]) < 8:
        raise ValueError("Password must be at least 8 characters long")
    # A step's output is stored in the database with the run: leave the password out.
    data: CustomerData = {
        "email": input["email"],
        "first_name": input["first_name"],
        "last_name": input["last_name"],
    }
    return StepResponse(data)


@create_step("create-customer")
async def create_customer(input: CustomerData, ctx: StepContext) -> StepResponse:
    """Create the customer."""
    customers = ctx.container.resolve("customers")
    customer = await customers.create_customer(
        email=input["email"], first_name=input["first_name"], last_name=input["last_name"]
    )
    return StepResponse({"customer": customer}, compensate_input=customer["id"])


@create_customer.compensate
async def delete_customer(customer_id: str | None, ctx: StepContext) -> None:
    """Delete the customer again."""
    if customer_id is None:
        return
    await ctx.container.resolve("customers").delete_customer(customer_id)


@create_step("create-auth-user")
async def create_auth_user(input: dict[str, Any], ctx: StepContext) -> StepResponse:
    """Create the customer's e-mail/password log-in."""
    auth = ctx.container.resolve("auth")
    auth_user = await auth.create_auth_user(
        provider_id="emailpass",
        user_metadata={"customer_id": input["customer"]["id"], "email": input["email"]},
        password=input["password"],
    )
    return StepResponse({"auth_user": auth_user}, compensate_input=auth_user["id"])


@create_auth_user.compensate
async def delete_auth_user(auth_user_id: str | None, ctx: StepContext) -> None:
    """Delete the log-in again."""
    if auth_user_id is None:
        return
    await ctx.container.resolve("auth").delete_auth_user(auth_user_id)


@create_step("assign-customer-group")
async def assign_customer_group(input: dict[str, Any], ctx: StepContext) -> StepResponse:
    """Put the customer in the default customer group."""
    customers = ctx.container.resolve("customers")
    await customers.add_customer_to_group(input["customer"]["id"], DEFAULT_GROUP)
    return StepResponse({"group_assigned": True}, compensate_input=input["customer"]["id"])


@assign_customer_group.compensate
async def remove_customer_from_group(customer_id: str | None, ctx: StepContext) -> None:
    """Take the customer out of the default group again."""
    if customer_id is None:
        return
    await ctx.container.resolve("customers").remove_customer_from_group(customer_id, DEFAULT_GROUP)


@create_step("send-welcome-email")
async def send_welcome_email(input: dict[str, Any], ctx: StepContext) -> StepResponse:
    """Welcome the new customer by e-mail."""
    customer = input["customer"]
    await ctx.container.resolve("email").send_welcome_email(
        to=customer["email"],
        customer_name=f"{customer['first_name']} {customer['last_name']}",
    )
    return StepResponse({"email_sent": True})


def customer_registration_flow(input: Any) -> WorkflowResponse:
    validated_data = validate_customer_data(input)
    customer = create_customer(validated_data)["customer"]
    # The password goes straight from the run's input to the step that needs it.
    auth, group = parallelize(
        create_auth_user(
            {"customer": customer, "email": input["email"], "password": input["password"]}
        ),
        assign_customer_group({"customer": customer}),
    )
    welcome_email = send_welcome_email({"customer": customer})
    return WorkflowResponse(
        {
            "customer": customer,
            "auth_user": auth["auth_user"],
            "email_sent": welcome_email["email_sent"],
            "group_assigned": group["group_assigned"],
        }
    )


customer_registration = create_workflow("customer-registration", customer_registration_flow)
