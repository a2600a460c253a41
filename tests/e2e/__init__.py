"""End-to-end tests: ``runtime start`` in a real process, with other processes talking to it."""
