"""A part Sentinel needs that does not answer is one line on stderr with its own exit code, never a
traceback. Each fault is real: nothing listens where the part should be."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from sentinel.errors import DATABASE, PREFECT


def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again: nothing listens there


def one_line(result: subprocess.CompletedProcess, code: int, begins: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {begins}"), result.stderr


def test_a_ledger_database_that_does_not_answer(tmp_path):
    env = os.environ | {"SENTINEL_HOME": str(tmp_path), "SENTINEL_LEDGER_URL": f"postgresql+psycopg://postgres@127.0.0.1:{dead_port()}/x"}
    result = subprocess.run(
        [sys.executable, "-m", "sentinel.cli", "batches", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    one_line(result, DATABASE, "the ledger's database is locked or unreachable")


def test_a_prefect_api_that_does_not_answer(tmp_path):
    env = os.environ | {"SENTINEL_HOME": str(tmp_path), "PREFECT_API_URL": f"http://127.0.0.1:{dead_port()}/api"}
    result = subprocess.run([sys.executable, "-m", "deployments.workers"], env=env, capture_output=True, text=True, timeout=120)
    one_line(result, PREFECT, "the Prefect API did not answer")
