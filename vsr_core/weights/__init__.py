"""The shipped weight files and their JSON model cards (data only; see vsr_core.checkpoints.shipped)."""
