"""The jobs the drift worker (`sentinel.drift_worker`) runs, by name: the text signal of a warm check with
the champion's predictions of the batch, all of Evidently's work for a cold `sentinel process`, and a
new drift reference with its calibration while a retrain fits."""

from sentinel import drift, drift_reference

JOBS = {
    "text": drift.text_job,
    "signals": drift.all_scores,
    "reference": lambda training, policy, seed: drift_reference.build_reference(training, 0.0, policy, seed),
}

prepare = drift.prepare  # Evidently's imports, before the first job waits on them
