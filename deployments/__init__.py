"""How Sentinel's flows run: `serve.py` (what `sentinel up` starts) and `prefect.yaml` (for
`prefect deploy` onto a work pool)."""
