"""Sentinel's Prefect flows: thin wrappers over the library's use cases (`sentinel.taking_in`, `drift_checks`, `retraining`, `loop`) that add what Prefect is for (runs
in the UI, retries, logs). Each flow takes its work from the ledger, so running one twice, or after a
missed event, does no harm."""
