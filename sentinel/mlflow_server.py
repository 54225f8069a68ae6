"""`mlflow server` as one process: `python -m sentinel.mlflow_server [mlflow server options]`.

MLflow's command starts its uvicorn server as a child, then only forwards signals to it and waits,
holding every MLflow module it imported: about 200 MB of the 2 GB `sentinel up` may use (measured at
the burst's peak). Here that last step, starting the child, becomes an exec, so the server takes over
the launcher's process. The options, the environment the server reads and the app are MLflow's own; a
signal reaches the server directly. Only when MLflow's job runner is off (`sentinel up` turns it off),
because MLflow starts that runner after the child.
"""

from __future__ import annotations

import os
import sys


def _exec_instead(command: list[str], *, extra_env: dict | None = None, **_ignored) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(command[0], command, os.environ | (extra_env or {}))


def main(options: list[str]) -> None:
    """`mlflow server` with these options, its server exec'd in this process."""
    import mlflow.server
    from mlflow.cli import cli
    from mlflow.environment_variables import MLFLOW_SERVER_ENABLE_JOB_EXECUTION

    if not MLFLOW_SERVER_ENABLE_JOB_EXECUTION.get():
        mlflow.server._exec_cmd = _exec_instead  # what `_run_server` starts the server with
    cli(["server", *options], prog_name="mlflow server")


if __name__ == "__main__":
    main(sys.argv[1:])
