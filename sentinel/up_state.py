"""The state file of `sentinel up`: the PIDs and URLs of the supervisor and its children. `sentinel status`
reads it to say what runs, and read commands read it to ask a running MLflow server rather than import
MLflow's client. Kept apart from `sentinel.up` so that reading it imports nothing heavy."""

from __future__ import annotations

import json
import os

from sentinel.settings import Settings

# The Prefect work pool of `up.workers` (scale-out). Here, not in `sentinel.up`, so that the process
# serving the deployments names it without importing what `up` itself needs (pandas, SQLAlchemy: about
# 100 MB of that process's memory).
WORK_POOL = "sentinel"


def pid_alive(pid: int | None) -> bool:
    """True when a process with this PID exists."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(settings: Settings) -> dict:
    """What the last `sentinel up` of this project recorded ({"services": {}} when none did)."""
    try:
        return json.loads(settings.state_path.read_text())
    except (OSError, ValueError):
        return {"services": {}}


def write_state(settings: Settings, services: dict[str, dict]) -> None:
    """Record this supervisor's PID and each child's `{"pid", "url"}`, written whole."""
    state = {"supervisor_pid": os.getpid(), "services": services}
    settings.state_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = settings.state_path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=2))
    temporary.replace(settings.state_path)


def running_service_url(settings: Settings, name: str) -> str | None:
    """The URL of the service `name` of this project's `sentinel up`, while its supervisor runs (it
    restarts a child that dies, so a live supervisor means the URL is, or is about to be, served)."""
    state = read_state(settings)
    if not pid_alive(state.get("supervisor_pid")):
        return None
    return (state["services"].get(name) or {}).get("url")
