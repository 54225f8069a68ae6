"""A real headless Chromium, as a person's browser: the page's DOM once its scripts have run, what its
console said, and a screenshot kept under the test artifacts folder (`SENTINEL_TEST_ARTIFACTS`, by
default `test-artifacts/` at the repository's root) for a person to look at after the run."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ARTIFACTS = Path(os.environ.get("SENTINEL_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND"]  # any fetch from a network fails, and is logged


def chromium() -> str:
    """Chromium from the distribution's packages, installed when missing (as .ci/run does)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False, capture_output=True, timeout=900)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail("the page check needs Chromium: apt-get install -y chromium")
    return found


@dataclass(frozen=True)
class Page:
    dom: str
    console: list[str]  # console messages and failed name lookups


def open_page(url: str, profile: Path, *, offline: bool = False, wait_ms: int = 0) -> Page:
    """The DOM after load. `wait_ms` lets a single-page app's scripts fetch and render first (virtual
    time: Chromium waits for the page's own requests, however slow the machine)."""
    command = [*_browser(profile, offline, wait_ms), "--enable-logging=stderr", "--v=0", "--dump-dom", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "ERR_NAME_NOT_RESOLVED" in line]
    return Page(done.stdout, console)


def screenshot(url: str, profile: Path, name: str, *, offline: bool = False, wait_ms: int = 0, size: str = "1400,1000") -> Path:
    """A PNG of the page kept as `<artifacts>/<name>.png`; fails if it is blank."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    command = [*_browser(profile, offline, wait_ms), f"--window-size={size}", "--hide-scrollbars", f"--screenshot={shot}", url]
    subprocess.run(command, capture_output=True, timeout=180)
    assert shot.exists(), f"no screenshot of {url}"
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    colours = {tuple(p) for p in (pixels[::7, ::7].reshape(-1, 3) * 255).astype(int)}
    assert float(np.std(pixels)) > 0.05 and len(colours) > 20, f"the screenshot of {url} looks blank"
    return shot


def _browser(profile: Path, offline: bool, wait_ms: int) -> list[str]:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}"]
    command += OFFLINE if offline else []
    return command + ([f"--virtual-time-budget={wait_ms}"] if wait_ms else [])
