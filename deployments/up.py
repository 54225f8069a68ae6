"""`sentinel up` from the Prefect layer: the supervisor of `sentinel.up` (servers, flow runners), with
the watcher checking drift through the drift-check flow. `sentinel up` hands its process over to
`python -m deployments.up`, since the library never imports the flows."""

from __future__ import annotations

import sys

from deployments.watch import inline_check
from sentinel import up
from sentinel.settings import load_settings
from sentinel.terminal import console, progress, report_failure, say


def main() -> None:
    """Run everything until Ctrl-C or SIGTERM; a problem starting it is one line and exit code 1."""
    console.print("starting the Prefect server, the MLflow server and the Evidently UI …")
    try:
        up.run(load_settings(), say, progress, inline_check)
    except Exception as error:
        code = report_failure(error)
        if code is None:
            raise
        sys.exit(code)


if __name__ == "__main__":
    main()
