"""The store's rules, written once above the backends: pure decisions over a snapshot.

A backend reads a snapshot (the few columns a rule reads), asks the rule, and applies
its decision with a compare-and-set: the write holds only while the columns the rule read
still hold the values it read. Nothing here touches a database, so each rule is tested
as a table (``tests/store/test_rules_*.py``) and a second backend reuses it unchanged.

- :mod:`~runtime.store.rules.state_table`: an operator's action on a run (DESIGN 2.1).
- :mod:`~runtime.store.rules.schedules`: a schedule's firing (overlap, execution counts).
- :mod:`~runtime.store.rules.routing`: the subscribers an event fans out to.
"""
