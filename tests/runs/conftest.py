"""The run management tests (listing, the state table) run on every database backend.

See ``backend`` in tests/helpers/backends.py.
"""

from tests.helpers.backends import backend as backend
