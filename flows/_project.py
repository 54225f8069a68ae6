from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sentinel.services import Sentinel
from sentinel.settings import load_settings


@contextmanager
def project() -> Iterator[Sentinel]:
    """The project of this process's settings (a flow run inherits them from whoever started it)."""
    app = Sentinel(load_settings())
    try:
        yield app
    finally:
        app.close()
