"""The text signal with cached word counts scores exactly what Evidently's own text content drift scores."""

from __future__ import annotations

import pandas as pd
import pytest
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.utils.data_drift_utils import calculate_text_drift_score
from evidently.metrics import ValueDrift

from sentinel import drift, text_drift


def _texts(frame: pd.DataFrame, start: int, rows: int) -> pd.Series:
    return frame["text"].iloc[start : start + rows].reset_index(drop=True)


CASES = {
    # (reference, batch): a stable check as `sentinel up` runs it, a real shift, small batches, a
    # calibration draw's sizes, and a reference whose texts repeat
    "stable imdb 200 vs 5,000": (("imdb", 0, 5000), ("imdb", 10_000, 200)),
    "rotten tomatoes 100 vs imdb 600": (("imdb", 0, 600), ("rotten", 0, 100)),
    "calibration draw 1,000 vs 5,000": (("imdb", 5000, 5000), ("imdb", 0, 1000)),
    "rotten tomatoes 60 vs 50": (("rotten", 100, 50), ("rotten", 200, 60)),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_the_same_score_as_evidently_to_the_last_bit(case, imdb, rotten):
    sources = {"imdb": imdb, "rotten": rotten}
    (ref_source, ref_start, ref_rows), (cur_source, cur_start, cur_rows) = CASES[case]
    reference = _texts(sources[ref_source], ref_start, ref_rows)
    current = _texts(sources[cur_source], cur_start, cur_rows)
    if case.startswith("rotten tomatoes 60"):
        reference = pd.concat([reference, reference.iloc[:20]], ignore_index=True)
    expected, _ = calculate_text_drift_score(reference, current, bootstrap=False)
    cache = text_drift.WordCounts()
    assert text_drift.domain_classifier_auc(reference, current, cache) == expected
    # again, every text's counts now read from the cache
    assert len(cache) == len(set(reference) | set(current))
    assert text_drift.domain_classifier_auc(reference, current, cache) == expected


def test_evidently_runs_it_as_a_named_method_of_value_drift(imdb, rotten):
    definition = DataDefinition(text_columns=["text"])
    reference = pd.DataFrame({"text": _texts(imdb, 0, 600)})
    current = pd.DataFrame({"text": _texts(rotten, 0, 100)})

    def run(method: str) -> dict:
        report = Report([ValueDrift(column="text", method=method)])
        snapshot = report.run(
            Dataset.from_pandas(current, data_definition=definition), Dataset.from_pandas(reference, data_definition=definition)
        )
        return snapshot.dict()["metrics"][0]

    drift.value_drift("text")  # registers the method, as every drift check does
    ours, evidently = run(drift.TEXT_METHOD), run("abs_text_content_drift")
    assert ours["config"]["method"] == "sentinel_text_content_drift"
    assert ours["value"] == evidently["value"] > 0.7  # a real shift


def test_the_cache_keeps_the_texts_seen_last():
    cache = text_drift.WordCounts(capacity=2)
    ((triumph,),), words = cache.of(["The film was a triumph, a film"])
    assert [words[i] for i in triumph[0]] == ["film", "triumph"]  # lower case, English stop words dropped
    assert triumph[1].tolist() == [2, 1]
    cache.of(["A dull film"])
    cache.of(["The film was a triumph, a film"])  # used again: now the most recent
    cache.of(["Bold and bright"])
    assert len(cache) == 2
    assert "A dull film" not in cache._counts and "The film was a triumph, a film" in cache._counts


def test_a_long_lived_process_starts_its_word_list_afresh_and_scores_the_same(imdb, rotten):
    reference, current = _texts(imdb, 0, 300), _texts(rotten, 0, 100)
    expected, _ = calculate_text_drift_score(reference, current, bootstrap=False)
    cache = text_drift.WordCounts(max_words=1_000)
    assert text_drift.domain_classifier_auc(reference, current, cache) == expected
    assert len(cache.words) > 1_000
    other = _texts(imdb, 300, 20)
    text_drift.domain_classifier_auc(reference, other, cache)  # past the bound: every text counted again
    assert len(cache) == len(set(reference) | set(other))
    assert text_drift.domain_classifier_auc(reference, current, cache) == expected


def test_texts_of_stop_words_only_fail_as_scikit_learns_vectoriser_does():
    with pytest.raises(ValueError, match="empty vocabulary"):
        text_drift.domain_classifier_auc(pd.Series(["the and", "of a"] * 5), pd.Series(["it is", "was the"] * 5), text_drift.WordCounts())
