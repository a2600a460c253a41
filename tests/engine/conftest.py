"""The engine tests run on every database backend (``backend``, see tests/helpers/databases.py)."""

from tests.helpers.databases import backend as backend
