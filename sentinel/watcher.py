"""The drop-zone watcher: watchdog says when something changed in `data/incoming/`; the watcher then takes
in every complete file and, when asked to, checks drift at once in its own warm process. A file is
complete when inotify saw its writer close it (or it was renamed in) and it then stayed unchanged for
`intake.closed_settle_seconds`; a file the watcher knows nothing about must stay unchanged for
`intake.settle_seconds`.

watchdog's events only wake the loop; what is done is decided from the folder and the ledger. So an
event watchdog misses, or a file that arrived while no watcher ran, is found by the next sweep (one at
start and one every `rescan_seconds`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from sentinel import drift, drift_worker, intake
from sentinel.context import Sentinel
from sentinel.pools import ready_batches
from sentinel.taking_in import take_in

log = logging.getLogger(__name__)


def _empty(path: str) -> bool:
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False


class _DropZoneEvents(FileSystemEventHandler):
    """Wakes the watcher and remembers, per file, what inotify said last: "writing" (created empty, or
    written to, and not closed yet: incomplete however long its writer pauses) or "complete" (closed
    after writing, or renamed into the drop zone). A "writing" entry without news for `stale_after`
    seconds is forgotten (its writer died), and the settle check alone decides."""

    def __init__(self, wake: threading.Event, stale_after: float = 60.0) -> None:
        self.wake = wake
        self.stale_after = stale_after
        self._state: dict[str, tuple[str, float]] = {}
        self._guard = threading.Lock()

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        if event.is_directory:
            return
        with self._guard:
            if kind == "modified" or (kind == "created" and _empty(event.src_path)):
                self._state[event.src_path] = ("writing", time.monotonic())
            elif kind == "closed":
                self._state[event.src_path] = ("complete", time.monotonic())
            elif kind == "moved":
                self._state.pop(event.src_path, None)
                self._state[event.dest_path] = ("complete", time.monotonic())
            elif kind == "created":  # moved in from outside the drop zone: it has its content already
                self._state[event.src_path] = ("complete", time.monotonic())
            elif kind == "deleted":
                self._state.pop(event.src_path, None)
        if kind in ("created", "modified", "moved", "closed"):
            self.wake.set()

    def state(self, path: Path) -> str:
        """ "writing", "complete" or "unknown" (not seen since the watcher started, or stale)."""
        with self._guard:
            found = self._state.get(str(path))
        if found is None or (found[0] == "writing" and time.monotonic() - found[1] > self.stale_after):
            return "unknown"
        return found[0]


class Watcher:
    """Runs until `stop` is set. `check(batch_id)` measures the oldest pending batch and returns the ids it
    checked (the drift-check flow when a Prefect server is up, `drift_checks.check_pending` standalone); with
    None, drift is left to the drift-check deployment. `notify` hears each intake outcome and each drift
    check, for a live display."""

    def __init__(
        self,
        app: Sentinel,
        check: Callable[[str], list[str]] | None = None,
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
        """Watch the drop zone until `stop` is set: sweep at every change, and every `rescan_seconds` anyway."""
        incoming = self.app.settings.incoming_dir
        incoming.mkdir(parents=True, exist_ok=True)
        if self.check is not None:
            # A long-lived checker pays Evidently's import once, then measures on both cores: its worker
            # takes each batch's text signal (and the next batch's, with a backlog).
            drift.prepare()
            drift_worker.warm_up()
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
        ready = [p for p in intake.pending_files(self.app.settings) if self.events.state(p) != "writing"]
        if ready:
            # Wait briefly for a file that still changes: the next change or rescan comes back to it.
            outcomes = take_in(self.app, ready, checks_drift=self.check is not None, settle_timeout=3.0, file_state=self.events.state)
            for outcome in outcomes:
                self.notify("intake", outcome)
                if outcome.status == "waiting":
                    self.wake.set()
        while self.check is not None and (pending := ready_batches(self.app)):
            checked = self.check(pending[0].batch_id)  # the oldest first; a few at a time, so progress shows
            for batch_id in checked:
                self.notify("drift", self.app.ledger.drift_checks(batch_id)[-1])
            if not checked:
                break  # another process holds the drift lock and checks them
