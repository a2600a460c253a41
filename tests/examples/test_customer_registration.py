"""The customer-registration workflow: customer, log-in and group, then the welcome e-mail."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import RunStatus, Runtime, StepFailed
from tests.examples.faults import fail_on
from workflows.customer_registration import customer_registration

FORM: dict[str, Any] = {
    "email": "ada@example.com",
    "password": "correct horse battery",
    "first_name": "Ada",
    "last_name": "Lovelace",
}


async def test_registers_a_customer(rt: Runtime) -> None:
    customers = rt.container.resolve("customers")
    auth = rt.container.resolve("auth")
    email = rt.container.resolve("email")

    result = await customer_registration(rt.container).run(input=FORM)

    assert result.status is RunStatus.COMPLETED
    assert result.result == {
        "customer": {
            "id": "cus_1",
            "email": "ada@example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "groups": [],
        },
        "auth_user": {
            "id": "auth_1",
            "provider_id": "emailpass",
            "user_metadata": {"customer_id": "cus_1", "email": "ada@example.com"},
        },
        "email_sent": True,
        "group_assigned": True,
    }
    assert customers.customers["cus_1"]["groups"] == ["default_customers"]
    assert set(auth.auth_users) == {"auth_1"}
    assert email.sent == [
        {"template": "welcome", "to": "ada@example.com", "data": {"customer_name": "Ada Lovelace"}}
    ]
    run = await rt.workflows.get_run(result.run_id)
    assert [(s.name, s.status) for s in run.steps] == [
        ("validate-customer-data", "completed"),
        ("create-customer", "completed"),
        ("create-auth-user", "completed"),
        ("assign-customer-group", "completed"),
        ("send-welcome-email", "completed"),
    ]


async def test_the_password_is_kept_out_of_step_records(rt: Runtime) -> None:
    result = await customer_registration(rt.container).run(input=FORM)

    run = await rt.workflows.get_run(result.run_id)
    stored = [s.model_dump_json() for s in run.steps]
    assert not [text for text in stored if FORM["password"] in text]
    assert run.steps[0].output == {
        "email": "ada@example.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"email": "Existing@example.com"}, "Customer with this email already exists"),
        ({"password": "short"}, "Password must be at least 8 characters long"),
    ],
)
async def test_refuses_a_taken_email_or_a_short_password(
    rt: Runtime, change: dict[str, str], message: str
) -> None:
    with pytest.raises(StepFailed) as caught:
        await customer_registration(rt.container).run(input={**FORM, **change})

    assert (caught.value.step, caught.value.error_type, caught.value.message) == (
        "validate-customer-data",
        "ValueError",
        message,
    )
    assert set(rt.container.resolve("customers").customers) == {"cus_existing"}


async def test_a_failed_welcome_email_undoes_the_registration(rt: Runtime) -> None:
    customers = rt.container.resolve("customers")
    auth = rt.container.resolve("auth")
    journal = rt.container.resolve("journal")
    fail_on(rt.container.resolve("email"), "send_welcome_email")

    result = await customer_registration(rt.container).run(input=FORM, throw_on_error=False)

    assert result.status is RunStatus.FAILED
    assert [(e.step, e.type) for e in result.errors] == [("send-welcome-email", "ServiceError")]
    assert set(customers.customers) == {"cus_existing"}
    assert auth.auth_users == {}
    writes, rollback = journal.entries[:3], journal.entries[3:]
    assert writes[0] == "customers.create_customer cus_1"
    # The log-in and the group ran in parallel, so either may come first; both are
    # undone before the customer they belong to is deleted.
    assert set(writes[1:]) == {
        "auth.create_auth_user auth_1",
        "customers.add_customer_to_group cus_1 default_customers",
    }
    assert set(rollback[:2]) == {
        "auth.delete_auth_user auth_1",
        "customers.remove_customer_from_group cus_1 default_customers",
    }
    assert rollback[2:] == ["customers.delete_customer cus_1"]
    run = await rt.workflows.get_run(result.run_id)
    assert run.status is RunStatus.FAILED
    assert [(s.name, s.status) for s in run.steps] == [
        ("validate-customer-data", "completed"),
        ("create-customer", "compensated"),
        ("create-auth-user", "compensated"),
        ("assign-customer-group", "compensated"),
        ("send-welcome-email", "failed"),
    ]


async def test_a_failed_group_assignment_raises_and_sends_no_email(rt: Runtime) -> None:
    fail_on(rt.container.resolve("customers"), "add_customer_to_group")

    with pytest.raises(StepFailed) as caught:
        await customer_registration(rt.container).run(input=FORM)

    assert caught.value.step == "assign-customer-group"
    assert rt.container.resolve("email").sent == []
    assert rt.container.resolve("auth").auth_users == {}
    assert set(rt.container.resolve("customers").customers) == {"cus_existing"}
