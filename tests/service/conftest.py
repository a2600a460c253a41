"""The service tests run on every database backend (``backend``, see tests/helpers/backends.py)."""

from tests.helpers.backends import backend as backend
