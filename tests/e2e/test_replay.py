"""`sentinel replay` as a user runs it: the demo's stream of real reviews (stable IMDB, the shift to Rotten
Tomatoes, a batch whose labels were flipped upstream) replayed with the four built-in policies through
the command line, then its page opened in a real headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sentinel import demo

pytestmark = pytest.mark.slow
HOSTILE = "04-rotten-4 <img src=x onerror=alert(1)>.csv"  # a file name shaped like an HTML payload


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> tuple[dict, Path]:
    folder = tmp_path_factory.mktemp("replay")
    paths = demo.replay_stream(folder)
    stream = folder / "stream"
    (stream / "04-rotten-4.csv").rename(stream / HOSTILE)
    out = folder / "out"
    done = subprocess.run(
        [sys.executable, "-m", "sentinel.cli", "replay", str(stream), "--reference", str(paths["reference"])]
        + ["--holdout", f"imdb={paths['imdb']}", "--holdout", f"rotten={paths['rotten']}", "--out", str(out), "--json"],
        env=os.environ | {"SENTINEL_HOME": str(folder)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), out


def test_the_policies_rank_as_a_user_expects(replayed):
    summary, out = replayed
    policies = summary["policies"]
    assert list(policies) == ["sentinel", "never", "always", "oracle"]
    final = {name: p["final"]["rotten"] for name, p in policies.items()}
    assert final["oracle"] >= final["sentinel"] > final["never"]  # the shift is learned
    assert policies["never"]["retrains"] == 0 and policies["never"]["final"] == policies["never"]["first_champion"]["accuracy"]
    assert policies["sentinel"]["bad_promotions"] == 0 and policies["oracle"]["bad_promotions"] == 0
    assert policies["always"]["bad_promotions"] == 1  # the naive loop learns the flipped labels

    document = json.loads((out / "replay.json").read_text())
    flipped = [b for b in document["policies"]["always"]["batches"] if b["file"] == "03-rotten-flipped.csv"]
    assert flipped[0]["decision"] == "promoted" and flipped[0]["bad_promoted"]
    sentinel = document["policies"]["sentinel"]["batches"]
    assert not any(b["decision"] == "promoted" and "03-rotten-flipped.csv" in b["learned"] for b in sentinel)
    for name, policy in document["policies"].items():
        for key in ("retrains", "promotions", "compute_seconds"):
            assert key in policy, (name, key)
        for batch in policy["batches"]:
            assert {"file", "drift", "retrained", "decision", "champion", "accuracy"} <= set(batch)
            assert set(batch["accuracy"]) == {"imdb", "rotten"}
    assert {p.name for p in out.iterdir()} >= {"replay.json", "replay.csv", "replay.html", "replay.png"}


def _chromium() -> str:
    """Chromium from the distribution's packages, installed when missing (as .ci/run does)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False, capture_output=True, timeout=900)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail("the page check needs Chromium: apt-get install -y chromium")
    return found


def test_the_page_loads_offline_draws_the_plot_and_shows_a_hostile_name_as_text(replayed, tmp_path):
    _, out = replayed
    browser = _chromium()
    page = (out / "replay.html").resolve().as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    offline = ["--host-resolver-rules=MAP * ~NOTFOUND"]  # any fetch from a network would fail, and be logged
    dom = subprocess.run(
        [browser, *flags, *offline, "--enable-logging=stderr", "--v=0", "--dump-dom", page], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "onerror=alert(1)&gt;" in dom.stdout and "<img" not in dom.stdout  # the name is text, no element
    assert "<svg" in dom.stdout
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "ERR_NAME_NOT_RESOLVED" in line]
    assert console == []

    shot = tmp_path / "page.png"
    subprocess.run([browser, *flags, *offline, "--window-size=1200,1400", f"--screenshot={shot}", page], capture_output=True, timeout=120)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    colours = {tuple(p) for p in (pixels[::7, ::7].reshape(-1, 3) * 255).astype(int)}
    assert float(np.std(pixels)) > 0.05 and len(colours) > 20, "the screenshot looks blank"
