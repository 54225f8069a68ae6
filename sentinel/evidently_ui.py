"""The Evidently UI of `sentinel up`, served from the supervisor's own process.

The supervisor runs the watcher, which imports all of Evidently for its drift checks. `evidently ui` as a
child process imported it all again: 235 MB PSS of the 2 GB that every process of `up` may hold under
load, against about 20 MB for Evidently's own app (`create_app`, the one `evidently ui` serves) on a
uvicorn server in a thread here. It answers on the same port with the same pages. It shares the
watcher's interpreter, so a page being built takes turns with a check; an idle server costs about a
millisecond of CPU a second. It looks like a child `Service` to the supervisor: started, checked,
restarted when its thread ends, stopped in order.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

STOP_SECONDS = 10.0


@dataclass
class EvidentlyUI:
    """Evidently's UI app on `host:port` over `workspace`, on a uvicorn server in a daemon thread."""

    name: str
    host: str
    port: int
    workspace: Path
    url: str
    ready: Callable[[], bool]
    log_path: Path
    restarts: int = 0
    server: object | None = None  # the uvicorn.Server of the current thread
    thread: threading.Thread | None = None
    error: BaseException | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        """This process's id, once started: the UI is served from it."""
        return os.getpid() if self.thread is not None else None

    def start(self, env: dict[str, str], log_max_bytes: int = 10_000_000, log_backups: int = 3) -> None:
        """Build the app and serve it in a new thread; its log rotates by size like a child's. `env` is
        already this process's environment (`sentinel.up.run` applies it before anything starts)."""
        import uvicorn
        from evidently.ui.service.app import create_app, get_config

        _log_to(self.log_path, log_max_bytes, log_backups)
        app = create_app(get_config(host=self.host, port=self.port, workspace=str(self.workspace)))
        # log_config=None: uvicorn's own would reconfigure the logging of the whole process (Prefect's too).
        self.server = uvicorn.Server(uvicorn.Config(app, host=self.host, port=self.port, log_config=None))
        self.error = None
        self.thread = threading.Thread(target=self._serve, args=(self.server,), daemon=True, name=f"{self.name}-server")
        self.thread.start()

    def _serve(self, server) -> None:
        log = logging.getLogger("uvicorn.error")
        try:
            server.run()
        except SystemExit as error:  # uvicorn's own way out when it cannot start: it has logged why
            self.error = error
            log.error("the Evidently UI stopped (exit code %s)", error.code)
        except BaseException as error:  # a crash: logged, and `ended` says so to the supervisor
            self.error = error
            log.exception("the Evidently UI stopped")

    def alive(self) -> bool:
        """True while its server thread runs."""
        return self.thread is not None and self.thread.is_alive()

    def ended(self) -> str | None:
        """Why a started server is no longer running; None while it runs (or before its start)."""
        if self.thread is None or self.thread.is_alive():
            return None
        return f"its server stopped: {self.error!r}" if self.error else "its server stopped"

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Ask the server to finish its requests and close its port, then wait for the thread."""
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)


def _log_to(path: Path, max_bytes: int, backups: int) -> None:
    """uvicorn's loggers ("uvicorn.error", "uvicorn.access" under "uvicorn") write to the UI's own log,
    rotated by size, and not to `up`'s console."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("uvicorn")
    for old in list(logger.handlers):  # a restart replaces the handler, never stacks a second one
        logger.removeHandler(old)
        old.close()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
