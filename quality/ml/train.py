"""Out-of-fold training: no item is ever scored by a model that saw its own label.

`train_out_of_fold` fits the campaign's model K times (stratified K-fold, seeded) and keeps, for
each training item, the prediction of the fold model that did not see it (`cross_val_predict`);
then it fits once more on every training item, and that model scores the items outside the
training set (which it did not see either). The out-of-fold accuracy against the training labels
is the honest estimate of the model's accuracy that `ModelVersion.oof_accuracy` records.

Models: texts, TF-IDF of words and word pairs (sublinear tf) into a logistic regression; images,
the features of `quality.ml.features` standardised into a logistic regression.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

TEXT = "text_tfidf_logreg"
IMAGE = "image_features_logreg"
MAX_FOLDS = 5
MIN_PER_CLASS = 2  # a class needs this many training items to be learned at all


def make_model(kind: str) -> Pipeline:
    if kind == TEXT:
        return make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=200_000),
            LogisticRegression(C=4.0, max_iter=1000),
        )
    if kind == IMAGE:
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
    raise ValueError(f"unknown model kind {kind!r}")


@dataclass(frozen=True)
class Trained:
    kind: str
    n_classes: int
    oof_proba: NDArray[np.float64]  # (n_train, K), columns = campaign class codes
    oof_accuracy: float
    model: Pipeline
    classes_seen: NDArray[np.intp]  # campaign class codes the model knows

    def predict_proba(self, x: Any) -> NDArray[np.float64]:
        """(n, K) class probabilities of new inputs, in campaign class codes."""
        out = np.zeros((_length(x), self.n_classes))
        if _length(x):
            out[:, self.classes_seen] = self.model.predict_proba(x)
        return out


def _length(x: Any) -> int:
    return int(x.shape[0]) if hasattr(x, "shape") else len(x)


def learnable(labels: Sequence[int] | NDArray[np.intp]) -> NDArray[np.bool_]:
    """Training items whose class has at least MIN_PER_CLASS examples."""
    y = np.asarray(labels, dtype=np.intp)
    counts = np.bincount(y) if y.size else np.zeros(0, dtype=np.intp)
    return np.asarray(counts[y] >= MIN_PER_CLASS) if y.size else np.zeros(0, dtype=bool)


def train_out_of_fold(
    x: Any, y: Sequence[int] | NDArray[np.intp], *, kind: str, n_classes: int, seed: int = 0
) -> Trained | None:
    """Fit out of fold; None when there is too little to learn (under 2 learnable classes).

    `x` is a list of texts or an (n, d) feature array, `y` campaign class codes; every class must
    have at least MIN_PER_CLASS items (filter with `learnable`).
    """
    y = np.asarray(y, dtype=np.intp)
    present = np.unique(y)
    if present.size < 2:
        return None
    folds = int(min(MAX_FOLDS, np.bincount(y)[present].min()))
    if folds < 2:
        raise ValueError("every class needs at least 2 training items; filter with learnable()")
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(make_model(kind), x, y, cv=cv, method="predict_proba")
    oof = np.zeros((y.size, n_classes))
    oof[:, present] = proba
    model = make_model(kind).fit(x, y)
    accuracy = float(np.mean(present[np.argmax(proba, axis=1)] == y))
    return Trained(
        kind=kind,
        n_classes=n_classes,
        oof_proba=oof,
        oof_accuracy=accuracy,
        model=model,
        classes_seen=present,
    )
