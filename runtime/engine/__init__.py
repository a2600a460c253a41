"""The saga executor: runs, steps, checkpoints, compensation, leases and recovery."""
