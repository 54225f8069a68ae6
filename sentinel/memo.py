"""Costly pure computations (a model fit, a drift reference's calibration, a model search) kept by a
digest of their inputs. Plain calls unless given a folder: `sentinel replay` gives one per replay, shared
by its policies, because they repeat each other's work on identical rows (every policy's first champion;
`always` and `oracle` until the first batch known bad).

Why by hand: Prefect's task cache (cache_policy=INPUTS) needs a Prefect run context and hashes arguments
by pickling them, while a replay runs no Prefect and its rows carry per-workspace batch ids; here the
callers pass only the columns the computation reads, and a DataFrame is hashed by pandas itself.

Each policy is charged what a kept result cost when it was computed, so `compute_seconds` in a replay
stays what the policy would cost alone. Two processes that need the same result at once: the second
waits for the first (a lock file per digest) instead of computing it twice on the same cores."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import inspect
import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

T = TypeVar("T")


def digest(kind: str, fn: Callable, args: tuple) -> str:
    """A digest of the computation's name and every argument's content."""
    h = hashlib.sha256(f"{kind}|{fn.__module__}.{fn.__qualname__}".encode())
    for value in args:
        _feed(h, value)
    return h.hexdigest()


def _feed(h, value) -> None:
    import numpy as np  # here, not at the top: the context imports this module, and read commands stay light
    import pandas as pd

    h.update(f"|{type(value).__name__}|".encode())
    if isinstance(value, pd.DataFrame):
        h.update(repr([(str(c), str(t)) for c, t in value.dtypes.items()]).encode())
        h.update(pd.util.hash_pandas_object(value, index=False).to_numpy().tobytes())
    elif isinstance(value, np.ndarray):
        h.update(f"{value.dtype}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, BaseModel):
        h.update(value.model_dump_json().encode())
    elif value is None or isinstance(value, (str, int, float, bool)):
        h.update(repr(value).encode())
    else:
        raise TypeError(f"memo cannot digest a {type(value).__name__}: pass plain values, frames, arrays or settings")


class Memo:
    """How the use cases run their costly pure computations: `app.memo("fit", training.fit, rows, params)`."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.charged = 0.0  # CPU seconds of results taken from the folder, as they cost when computed

    def __call__(self, kind: str, fn: Callable[..., T], /, *args) -> T:
        """`fn(*args)`, or the result kept from an earlier call with the same inputs."""
        if self.folder is None:
            return fn(*args)
        path = self.folder / f"{kind}-{digest(kind, fn, args)}.pickle"
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # whoever computes it first, the others wait and read it
            if path.is_file():
                cost, value = pickle.loads(path.read_bytes())  # written by this replay, in its own folder
                self.charged += cost
                return value
            started = time.process_time()
            value = fn(*args)
            partial = path.with_name(f".{path.name}.{os.getpid()}")
            partial.write_bytes(pickle.dumps((time.process_time() - started, value), protocol=pickle.HIGHEST_PROTOCOL))
            partial.replace(path)
            return value

    def kept(self, kind: str, fn: Callable[..., T]) -> Callable[..., T]:
        """`fn` run through this memo, under its own name (a step the flows make a Prefect task)."""
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)  # Prefect calls a task's function with keywords
            bound.apply_defaults()
            return self(kind, fn, *bound.args)

        return run
