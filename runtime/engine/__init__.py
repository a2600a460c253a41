"""The saga executor: runs, steps, checkpoints, compensation, leases and recovery.

Read it in this order: ``executor`` (start, resume, drive, end a run), ``run`` (the
run being driven and its one ``checkpoint()``), the two drivers ``graph_driver``
(composition workflows) and ``replay_driver`` (durable functions), ``step_runner``
and ``attempts`` (one step), ``rollback`` (compensation), then ``worker`` (the
background queue) and ``leases`` (who holds a run). See docs/architecture.md.
"""
