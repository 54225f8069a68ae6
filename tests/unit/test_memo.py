"""The memo a replay's policies share: a result is computed once per distinct input, charged to every
caller at what it cost, and a different input (one text, one setting, the weights) is computed anew."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sentinel.memo import Memo, digest
from sentinel.settings import ModelParams


class Counted:
    """A pure computation that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def fit(self, rows: pd.DataFrame, params: ModelParams, weights: np.ndarray | None = None) -> float:
        self.calls += 1
        sum(range(200_000))  # some CPU, so the charge is measurable
        return float(rows["label"].sum() * params.C + (0 if weights is None else weights.sum()))


ROWS = pd.DataFrame({"text": ["good film", "dull plot", "fine cast"], "label": [1, 0, 1]})


def test_without_a_folder_every_call_computes(tmp_path):
    counted, memo = Counted(), Memo()
    assert memo("fit", counted.fit, ROWS, ModelParams()) == memo("fit", counted.fit, ROWS, ModelParams())
    assert counted.calls == 2 and memo.charged == 0.0 and not list(tmp_path.iterdir())


def test_the_same_inputs_are_computed_once_and_charged_to_the_next_caller(tmp_path):
    counted = Counted()
    first, second = Memo(tmp_path), Memo(tmp_path)  # two policies of one replay
    value = first("fit", counted.fit, ROWS, ModelParams())
    assert second("fit", counted.fit, ROWS.copy(), ModelParams()) == value
    assert counted.calls == 1
    assert first.charged == 0.0 and second.charged > 0.0  # the reader pays what the result cost


@pytest.mark.parametrize(
    "changed",
    [
        (ROWS.assign(text=["good film", "dull plot", "fine cast!"]), ModelParams(), None),
        (ROWS.iloc[[1, 0, 2]], ModelParams(), None),  # the same rows in another order fit another model
        (ROWS, ModelParams(C=2.0), None),
        (ROWS, ModelParams(), np.array([1.0, 1.0, 3.0])),
    ],
    ids=["one text", "row order", "a setting", "weights"],
)
def test_any_different_input_is_computed_anew(tmp_path, changed):
    counted, memo = Counted(), Memo(tmp_path)
    memo("fit", counted.fit, ROWS, ModelParams(), None)
    memo("fit", counted.fit, *changed)
    assert counted.calls == 2


def test_the_kind_and_function_are_part_of_the_key():
    assert digest("fit", len, (ROWS,)) != digest("reference", len, (ROWS,))
    assert digest("fit", len, (ROWS,)) != digest("fit", sum, (ROWS,))


def test_an_argument_it_cannot_digest_is_refused_by_name(tmp_path):
    with pytest.raises(TypeError, match="cannot digest a object"):
        Memo(tmp_path)("fit", Counted().fit, object())


def test_kept_runs_through_the_memo_under_the_functions_own_name(tmp_path):
    counted = Counted()
    kept = Memo(tmp_path).kept("fit", counted.fit)
    assert kept.__name__ == "fit"  # what Prefect names a task by
    kept(ROWS, ModelParams())
    kept(rows=ROWS, params=ModelParams(), weights=None)  # as Prefect calls it: the same inputs
    assert counted.calls == 1
