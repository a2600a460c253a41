"""The PostgreSQL store: many runtime processes, on many machines, share one database.

Imported only when a ``postgresql://`` URL is opened: psycopg is an optional
dependency (``pip install "runtime[postgres]"``).
"""

from runtime.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
