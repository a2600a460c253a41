"""When a scheduled job fails for good, alert the people who run the store (seed 002).

Seed 002's ``BaseJob`` retries a job and, after the last attempt, calls
``handleFinalFailure`` to send an alert. Here the two halves are separate: a
job's ``JobConfig(max_retries=..., retry_interval=...)`` does the retrying, and
a run of a job that still fails publishes ``job.failed`` with::

    {"job": "sync-inventory", "run_id": "...", "workflow": "job-sync-inventory",
     "status": "failed", "error": {"step": "run-job", "type": "...", "message": "..."}}

so every job gets the alert without inheriting from anything: this subscriber.

The alert is sent with the event id as its idempotency key: events are delivered
at least once, and a redelivered ``job.failed`` must not page anyone twice.
"""

from __future__ import annotations

from runtime import SubscriberArgs, SubscriberConfig


async def handler(args: SubscriberArgs) -> None:
    """Send a high-severity ``job_failure`` alert naming the job, its run and the error."""
    failure = args.event.data
    error = failure.get("error") or {}
    message = error.get("message") or f"the run ended {failure['status']}"
    notifications = args.container.resolve("notifications")
    sent = await notifications.send_alert(
        "job_failure",
        f"job {failure['job']!r} failed: {message}",
        severity="high",
        details={
            "job": failure["job"],
            "run_id": failure["run_id"],
            "error_type": error.get("type"),
            "error": message,
        },
        idempotency_key=args.event.id,
    )
    args.logger.warning(
        "job_failure_alerted", job=failure["job"], run_id=failure["run_id"], sent=sent
    )


config = SubscriberConfig(event="job.failed", subscriber_id="job-failure-alert")
