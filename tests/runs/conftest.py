"""The run management tests (listing, the state table) run on every database backend.

See ``backend`` in tests/helpers/databases.py.
"""

from tests.helpers.databases import backend as backend
