from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def project() -> Iterator:
    """The project of this process's settings (a flow run inherits them from whoever started it).
    Imported here, not at the top: the serve process imports every flow module and stays small."""
    from sentinel.services import Sentinel
    from sentinel.settings import load_settings

    app = Sentinel(load_settings())
    try:
        yield app
    finally:
        app.close()
