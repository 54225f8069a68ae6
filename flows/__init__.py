"""Sentinel's Prefect flows: thin wrappers over `sentinel.services` that add what Prefect is for (runs
in the UI, retries, logs). Each flow takes its work from the ledger, so running one twice, or after a
missed event, does no harm."""
