"""The drop-zone watcher: watchdog says when something changed in `data/incoming/`; the watcher then takes
in every settled file and, when asked to, checks drift at once in its own warm process.

watchdog's events only wake the loop; what is done is decided from the folder and the ledger. So an
event watchdog misses, or a file that arrived while no watcher ran, is found by the next sweep (one at
start and one every `rescan_seconds`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from sentinel import intake, services
from sentinel.services import Sentinel

log = logging.getLogger(__name__)


class _Wake(FileSystemEventHandler):
    def __init__(self, wake: threading.Event) -> None:
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("created", "modified", "moved", "closed"):
            self.wake.set()


class Watcher:
    """Runs until `stop` is set. `check` measures drift of every pending batch (the drift-check flow when a
    Prefect server is up, `services.check_pending` standalone) and is skipped when None; `notify` hears
    each intake outcome and each drift check, for a live display."""

    def __init__(
        self,
        app: Sentinel,
        check: Callable[[], object] | None = None,
        notify: Callable[[str, object], None] | None = None,
        rescan_seconds: float = 10.0,
    ) -> None:
        self.app = app
        self.check = check
        self.notify = notify or (lambda kind, item: None)
        self.rescan_seconds = rescan_seconds
        self.wake = threading.Event()

    def run(self, stop: threading.Event) -> None:
        incoming = self.app.settings.incoming_dir
        incoming.mkdir(parents=True, exist_ok=True)
        observer = Observer()
        observer.schedule(_Wake(self.wake), str(incoming), recursive=False)
        observer.start()
        try:
            while not stop.is_set():
                self.wake.clear()
                try:
                    self.sweep()
                except Exception as error:  # the watcher never stops on one bad file or a server hiccup
                    log.exception("watcher sweep failed; retrying at the next change or rescan")
                    self.notify("error", error)
                self.wake.wait(timeout=self.rescan_seconds)
        finally:
            observer.stop()
            observer.join(timeout=5)

    def sweep(self) -> None:
        """Take in every settled file, then check drift of everything pending."""
        if intake.pending_files(self.app.settings):
            # Wait briefly for a file still being written: the next change or rescan comes back to it.
            outcomes = services.take_in(self.app, checks_drift=self.check is not None, settle_timeout=3.0)
            for outcome in outcomes:
                self.notify("intake", outcome)
                if outcome.status == "waiting":
                    self.wake.set()
        if self.check is not None and self.app.ledger.batches_awaiting_drift_check():
            for batch_id in self.check() or []:
                self.notify("drift", self.app.ledger.drift_checks(batch_id)[-1])
