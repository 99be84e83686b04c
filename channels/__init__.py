"""Channel adapters: each knows its provider and nothing else."""
