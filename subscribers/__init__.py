"""Example subscribers: one module per subscriber, each exporting ``handler`` and ``config``."""
