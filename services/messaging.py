"""What leaves the store as a message: e-mail, alerts for its staff, console lines."""

from __future__ import annotations

from typing import Any

from services.journal import DemoService, Journal

ADMINS = "admins@example.com"
"""Where the e-mail meant for the store's staff goes."""


class EmailService(DemoService):
    """Outgoing e-mail. Nothing leaves the process: messages land in :attr:`sent`.

    Attributes:
        sent: ``{"template", "to", "data"}`` per message, in order.
    """

    name = "email"

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.sent: list[dict[str, Any]] = []

    async def send_fulfillment_notification(
        self, *, order: dict[str, Any], fulfillment: dict[str, Any]
    ) -> None:
        """Tell the customer their order is on its way."""
        self._send(
            "fulfillment-notification",
            order["email"],
            {"order_id": order["id"], "fulfillment_id": fulfillment["id"]},
        )

    async def send_welcome_email(self, *, to: str, customer_name: str) -> None:
        """Welcome a newly registered customer."""
        self._send("welcome", to, {"customer_name": customer_name})

    async def send_daily_report(self, metrics: dict[str, Any], *, to: str = ADMINS) -> None:
        """Mail a day's metrics to the store's admins."""
        self._send("daily-report", to, {"date": metrics["date"], "metrics": metrics})

    async def send_email(self, to: str, subject: str, body: str) -> None:
        """Send a plain-text message (the Sonamu examples' ``sendEmail``)."""
        self._send("text", to, {"subject": subject, "body": body})

    async def send_html_email(self, to: str, subject: str, html: str) -> None:
        """Send an HTML message (version 2 of the welcome e-mail)."""
        self._send("html", to, {"subject": subject, "html": html})

    def _send(self, template: str, to: str, data: dict[str, Any]) -> None:
        self.sent.append({"template": template, "to": to, "data": data})
        self._record("send", f"{template} {to}")


class NotificationService(DemoService):
    """Alerts for the people who run the store (a pager, a chat channel, an e-mail).

    Attributes:
        alerts: ``{"type", "message", "severity", "details"}`` per alert sent, in order.
    """

    name = "notifications"

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.alerts: list[dict[str, Any]] = []
        self._sent_keys: set[str] = set()

    async def send_alert(
        self,
        type: str,
        message: str,
        *,
        severity: str = "high",
        details: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> bool:
        """Send an alert, once per ``idempotency_key``; returns False for a repeat.

        Events are delivered at least once, so a subscriber that alerts passes the
        event id as the key: a redelivered event does not page anyone twice.
        """
        if idempotency_key is not None:
            if idempotency_key in self._sent_keys:
                return False
            self._sent_keys.add(idempotency_key)
        alert = {
            "type": type,
            "message": message,
            "severity": severity,
            "details": dict(details or {}),
        }
        self.alerts.append(alert)
        self._record("send_alert", f"{severity} {type}")
        return True


class Console(DemoService):
    """Stands in for ``console.log`` in the seeds: keeps the lines it was given."""

    name = "console"

    def __init__(self, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        """Print a line (into :attr:`lines`)."""
        self.lines.append(message)
