"""The drop-zone watcher: watchdog says when something changed in `data/incoming/`; the watcher then takes
in every complete file (closed by its writer, and unchanged for `intake.settle_seconds`) and, when asked
to, checks drift at once in its own warm process.

watchdog's events only wake the loop; what is done is decided from the folder and the ledger. So an
event watchdog misses, or a file that arrived while no watcher ran, is found by the next sweep (one at
start and one every `rescan_seconds`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from sentinel import intake, services
from sentinel.services import Sentinel

log = logging.getLogger(__name__)


class _DropZoneEvents(FileSystemEventHandler):
    """Wakes the watcher, and tracks files created or written to but not yet closed (inotify's IN_CREATE or
    IN_MODIFY without IN_CLOSE_WRITE): such a file is incomplete however long its writer pauses. A file
    renamed into the drop zone was complete before the rename. An entry without news for `stale_after`
    seconds is forgotten (a hard link is created and never written), and the settle check applies."""

    def __init__(self, wake: threading.Event, stale_after: float = 60.0) -> None:
        self.wake = wake
        self.stale_after = stale_after
        self._writing: dict[str, float] = {}
        self._guard = threading.Lock()

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        with self._guard:
            if kind in ("created", "modified") and not event.is_directory:
                self._writing[event.src_path] = time.monotonic()
            elif kind in ("closed", "deleted", "moved"):
                self._writing.pop(event.src_path, None)
        if kind in ("created", "modified", "moved", "closed"):
            self.wake.set()

    def still_written(self) -> set[str]:
        now = time.monotonic()
        with self._guard:
            return {path for path, seen in self._writing.items() if now - seen < self.stale_after}


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
        self.events = _DropZoneEvents(self.wake)
        self.watching = threading.Event()  # set once watchdog watches: files written from then on are tracked

    def run(self, stop: threading.Event) -> None:
        incoming = self.app.settings.incoming_dir
        incoming.mkdir(parents=True, exist_ok=True)
        observer = Observer()
        observer.schedule(self.events, str(incoming), recursive=False)
        observer.start()
        self.watching.set()
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
        open_for_writing = self.events.still_written()
        ready = [p for p in intake.pending_files(self.app.settings) if str(p) not in open_for_writing]
        if ready:
            # Wait briefly for a file that still changes: the next change or rescan comes back to it. A
            # file opened after this sweep began is caught by the second look, after the settle wait.
            outcomes = services.take_in(
                self.app, ready, checks_drift=self.check is not None, settle_timeout=3.0, still_written=lambda path: str(path) in self.events.still_written()
            )
            for outcome in outcomes:
                self.notify("intake", outcome)
                if outcome.status == "waiting":
                    self.wake.set()
        if self.check is not None and self.app.ledger.batches_awaiting_drift_check():
            for batch_id in self.check() or []:
                self.notify("drift", self.app.ledger.drift_checks(batch_id)[-1])
