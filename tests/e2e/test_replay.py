"""`sentinel replay` as a user runs it: the demo's stream of real reviews (stable IMDB, the shift to Rotten
Tomatoes, a batch whose labels were flipped upstream) replayed with the four built-in policies through
the command line, then its page opened in a real headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sentinel import demo
from tests import browser

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


def test_the_page_loads_offline_draws_the_plot_and_shows_a_hostile_name_as_text(replayed, tmp_path):
    _, out = replayed
    page = (out / "replay.html").resolve().as_uri()
    shown = browser.open_page(page, tmp_path / "profile", offline=True)
    assert "onerror=alert(1)&gt;" in shown.dom and "<img" not in shown.dom  # the name is text, no element
    assert "<svg" in shown.dom
    assert shown.console == []
    browser.screenshot(page, tmp_path / "profile", "replay-page", offline=True, size="1200,1400")
