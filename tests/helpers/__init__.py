"""What the test suites share: one way to wait, test definitions, and real processes.

- ``waiting``: :func:`~tests.helpers.waiting.wait_until` (the one bounded poll) and the
  waits built on it (a run's status, a delivery).
- ``definitions``: test workflows in both authoring styles, subscribers, jobs, a runtime.
- ``processes``: a project copied to a temporary folder and run as ``runtime start``.
- ``crashkit`` and ``forkserver``: child processes killed with SIGKILL, and the fsynced
  log that tells what they did before.
- ``databases``: a multi-process test's database on either backend, read alike.
"""
