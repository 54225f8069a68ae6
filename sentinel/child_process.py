"""A child process of `sentinel up` (a server, the flow runner, a worker): started in its own process
group with its output in a log rotated by size, and stopped with SIGTERM, then SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Service:
    """One child process: how to start it and how to know it is ready."""

    name: str
    command: list[str]
    url: str
    ready: Callable[[], bool]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)  # its own, over the shared environment
    process: subprocess.Popen | None = None
    restarts: int = 0

    def start(self, env: dict[str, str], log_max_bytes: int = 10_000_000, log_backups: int = 3) -> None:
        """Start the child in its own process group, its output appended to its log, which is rotated by
        size (a thread here writes it: the child could not reopen a log renamed under it)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Its own process group: Ctrl-C reaches this supervisor, which stops the children in order.
        self.process = subprocess.Popen(
            self.command,
            env=os.environ | env | self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        pump = threading.Thread(
            target=pump_log, args=(self.process.stdout, self.log_path, log_max_bytes, log_backups), daemon=True, name=f"log-{self.name}"
        )
        pump.start()

    @property
    def pid(self) -> int | None:
        """The child's process id, once started."""
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        """True while the child runs."""
        return self.process is not None and self.process.poll() is None

    def ended(self) -> str | None:
        """Why a started child is no longer running; None while it runs (or before its start)."""
        if self.process is None or self.process.poll() is None:
            return None
        return f"exited (code {self.process.returncode})"

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the child's group, SIGKILL after `timeout` seconds."""
        if not self.alive():
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # the group: a server's own workers go too
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def pump_log(stream, path: Path, max_bytes: int, backups: int) -> None:
    """Copy a child's output into its log until the child closes it; past `max_bytes` the log becomes
    `NAME.log.1` (and `.1` becomes `.2`, up to `backups`), so a server that runs for months cannot fill
    the disk."""
    log = open(path, "ab")
    try:
        for chunk in iter(lambda: stream.read1(1 << 16), b""):
            if log.tell() and log.tell() + len(chunk) > max_bytes:
                log.close()
                for n in range(backups - 1, 0, -1):
                    older = path.with_name(f"{path.name}.{n}")
                    if older.exists():
                        older.replace(path.with_name(f"{path.name}.{n + 1}"))
                path.replace(path.with_name(f"{path.name}.1"))
                log = open(path, "ab")
            log.write(chunk)
            log.flush()
    finally:
        log.close()
        stream.close()
