"""Every night at 1 AM, store yesterday's sales metrics and mail them to the admins (seed 002).

"Yesterday" is the UTC day before the firing. The metrics are a pure function
of the day's orders and new customers (:func:`daily_metrics`), and they are
stored keyed by date, so a firing run again replaces the day instead of counting
it twice.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from runtime import Container, JobConfig

TOP_PRODUCTS = 10
"""How many of the best-selling variants the report lists."""


def daily_metrics(
    day: date, orders: list[dict[str, Any]], new_customers: list[dict[str, Any]]
) -> dict[str, Any]:
    """The seed's metrics for one day: orders, revenue, customers, best sellers.

    Args:
        day: the day the metrics are for.
        orders: the orders placed that day (``total`` in cents).
        new_customers: the customers who joined that day.
    """
    revenue = sum(order["total"] for order in orders)
    new_ids = {customer["id"] for customer in new_customers}
    units: Counter[str] = Counter()
    for order in orders:
        for item in order["items"]:
            units[item["variant_id"]] += item["quantity"]
    # Ties are broken by id, so the same orders always give the same report.
    best = sorted(units.items(), key=lambda pair: (-pair[1], pair[0]))[:TOP_PRODUCTS]
    return {
        "date": day.isoformat(),
        "orders": {
            "count": len(orders),
            "total_revenue": revenue,
            "average_order_value": revenue / len(orders) if orders else 0,
        },
        "customers": {
            "new_count": len(new_customers),
            # As in the seed: orders placed by customers who did not join that day.
            "returning_count": sum(1 for o in orders if o.get("customer_id") not in new_ids),
        },
        "products": {
            "top_selling": [{"variant_id": v, "units_sold": n} for v, n in best],
        },
    }


async def handler(container: Container) -> None:
    """Collect yesterday's metrics, store them and send the daily report."""
    orders = container.resolve("orders")
    customers = container.resolve("customers")

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    day_orders = await orders.list_orders(created_from=yesterday, created_before=today)
    new_customers = await customers.list_customers(created_from=yesterday, created_before=today)
    metrics = daily_metrics(yesterday.date(), day_orders, new_customers)

    await container.resolve("analytics").store_daily_metrics(metrics)
    await container.resolve("email").send_daily_report(metrics)
    container.resolve("logger").info("analytics_collected", date=metrics["date"])


config = JobConfig(name="collect-analytics-data", schedule="0 1 * * *")
