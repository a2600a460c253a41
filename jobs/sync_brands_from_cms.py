"""Once a day, pull the CMS's brands into the store (seed 004's scheduled sync).

The job only starts the ``sync-brands-from-cms`` workflow
(``workflows/sync_brands_from_cms.py``) and reports what it did: the syncing
logic, with its rollback, lives in the workflow, where each step is checkpointed.

The name and schedule are the seed's: ``sync-brands-from-system`` at midnight.
The seed suggests ``* * * * *`` while debugging; here, run the job's workflow once
by hand instead::

    runtime run job-sync-brands-from-system --wait
"""

from __future__ import annotations

from runtime import Container, JobConfig
from workflows.sync_brands_from_cms import sync_brands_from_cms


async def handler(container: Container) -> None:
    """Sync the brands and log how many were created and updated."""
    result = await sync_brands_from_cms(container).run()
    container.resolve("logger").info(
        "brands_synced_from_cms",
        created=len(result.result["created"]),
        updated=len(result.result["updated"]),
    )


config = JobConfig(name="sync-brands-from-system", schedule="0 0 * * *")
