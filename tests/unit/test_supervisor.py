"""The supervisor of `sentinel up`, with real child processes: logs rotated by size, no restart after a stop."""

from __future__ import annotations

import sys
import threading
import time

from sentinel.child_process import Service
from sentinel.up import Supervisor


def test_a_childs_log_is_rotated_by_size_and_keeps_a_bounded_number_of_backups(tmp_path):
    talker = Service(
        "talker",
        [sys.executable, "-c", "import sys\nfor i in range(3000): print(f'line {i:05} ' + 'x' * 90)\nsys.stdout.flush()"],
        url="",
        ready=lambda: True,
        log_path=tmp_path / "talker.log",
    )
    talker.start({}, log_max_bytes=60_000, log_backups=2)
    talker.process.wait(timeout=60)
    deadline = time.monotonic() + 10
    while not (tmp_path / "talker.log").read_text().endswith("line 02999 " + "x" * 90 + "\n") and time.monotonic() < deadline:
        time.sleep(0.1)
    logs = sorted(p.name for p in tmp_path.iterdir())
    assert logs == ["talker.log", "talker.log.1", "talker.log.2"]
    assert all((tmp_path / name).stat().st_size <= 60_000 + 65_536 for name in logs)
    newest = (tmp_path / "talker.log.1").read_text().splitlines()[-1]
    assert int((tmp_path / "talker.log").read_text().split()[1]) == int(newest.split()[1]) + 1  # nothing lost between them


def test_no_child_is_restarted_once_the_stop_has_begun(settings, tmp_path):
    supervisor = Supervisor(settings, say=lambda line: None)
    flaky = Service("flaky", [sys.executable, "-c", "pass"], url="", ready=lambda: True, log_path=tmp_path / "flaky.log")
    supervisor.children = [flaky]
    supervisor._start(flaky)
    watcher = threading.Thread(target=supervisor.watch_children, daemon=True)
    watcher.start()
    deadline = time.monotonic() + 30
    while flaky.restarts < 1 and time.monotonic() < deadline:  # it exits at once: the watcher restarts it
        time.sleep(0.05)
    assert flaky.restarts >= 1
    supervisor.stop()
    stopped_at = (flaky.restarts, flaky.process.pid)
    watcher.join(timeout=40)
    assert not watcher.is_alive()
    assert (flaky.restarts, flaky.process.pid) == stopped_at
