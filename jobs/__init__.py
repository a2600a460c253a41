"""Example scheduled jobs: one module per job, each exporting ``handler`` and ``config``."""
