"""The committee: scikit-learn learners trained on the human labels so far — and the one
module that imports modAL.

modAL-python 0.4.2.1 is unmaintained: on current scikit-learn its `ActiveLearner.fit()`
and `teach()` call `check_X_y(force_all_finite=…)`, which raises, and its vote entropy
counts votes row by row in Python (bench/al.py part 2 measures the gap). So the
learners are fitted with scikit-learn directly (query by bagging: each member sees a
stratified bootstrap of the labels, Abe & Mamitsuka 1998), and the disagreement measures
are computed here in vectorised numpy with modAL's own definitions:

- vote entropy (Dagan & Engelson 1995): entropy of the members' hard votes;
- max disagreement: the largest KL divergence of a member's class distribution from the
  consensus (the mean of the members' distributions);
- classifier entropy: entropy of the predicted class distribution of one classifier
  trained on every label.

`modal_*` run the same measures through modAL's `Committee`; the tests show the
vectorised versions pick exactly what modAL picks, and bench/al.py measures the ratio.
"""

from __future__ import annotations

import pickle
import weakref
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse


@dataclass
class FittedCommittee:
    classes: np.ndarray
    learners: list[Any]
    classifier: Any
    parameters: dict[str, Any] = field(default_factory=dict)
    # Sparse features: the columns the labelled items use. An L2-regularised linear model
    # gives every other column a weight of exactly zero, so fitting on these columns alone
    # is the same model at a fraction of the cost (2^18 hashed dimensions, a few thousand used).
    columns: np.ndarray | None = None
    n_features: int = 0
    _weights: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    # The last pool's decision values: the three measures score the same pool in a row.
    _last: tuple[Any, list[np.ndarray]] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.learners)

    def restrict(self, X: Any) -> Any:
        """X in the columns the members were fitted on (what their own predict expects)."""
        return X if self.columns is None else X[:, self.columns]

    def dumps(self) -> bytes:
        self._weights = None
        self._last = None
        return zlib.compress(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL), 6)

    @staticmethod
    def loads(blob: bytes) -> FittedCommittee:
        # Only ModelVersion.blob is ever loaded, which only this app's worker writes.
        return pickle.loads(zlib.decompress(bytes(blob)))  # noqa: S301


def _learner(seed: int, n_classes: int = 2, *, balanced: bool = True) -> Any:
    """Logistic regression. Two classes: liblinear, whose cost follows the non-zeros, not
    the 2^18 hashed dimensions (L-BFGS spends most of its time updating those). More
    classes: L-BFGS, the multinomial model liblinear does not fit. `balanced=False` when
    Horvitz–Thompson weights already make the labels stand for the population: balancing
    the classes on top would teach it a 50/50 world again."""
    from sklearn.linear_model import LogisticRegression

    solver = "liblinear" if n_classes == 2 else "lbfgs"
    return LogisticRegression(
        C=1.0,
        max_iter=1000,
        class_weight="balanced" if balanced else None,
        solver=solver,
        random_state=seed,
    )


def _stratified_bootstrap(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A bootstrap that keeps every class present, so every member knows every class."""
    parts = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        parts.append(rng.choice(idx, size=len(idx), replace=True))
    return np.sort(np.concatenate(parts))


def labels_trainable(y: np.ndarray, *, min_labels: int = 10) -> str | None:
    """Why these labels cannot train a committee, or None when they can."""
    if len(y) < min_labels:
        return f"{len(y)} labelled items; the committee needs at least {min_labels}"
    values, counts = np.unique(y, return_counts=True)
    if len(values) < 2:
        return "every labelled item has the same label; the committee needs two kinds"
    if counts.min() < 2:
        return "a label occurs only once; the committee needs at least two items of each"
    return None


def committee_fit(
    X: Any,
    y: np.ndarray,
    *,
    n_learners: int = 5,
    seed: int = 0,
    sample_weight: np.ndarray | None = None,
) -> FittedCommittee:
    """Fit the members on stratified bootstraps and the classifier on every label.

    `sample_weight`: importance weights (`qe.pool_weights`) when the labels came from
    uncertainty picks and an audit slice, so the committee learns the pool it will score
    rather than the picks' bias."""
    y = np.asarray(y)
    w = (
        None
        if sample_weight is None
        else np.asarray(sample_weight, dtype=float) / np.mean(sample_weight)
    )
    rng = np.random.default_rng(seed)
    n_classes = len(np.unique(y))
    n_features = X.shape[1]
    columns = None
    if sparse.issparse(X):
        X = sparse.csr_matrix(X)
        columns = np.unique(X.indices)
        X = X[:, columns]
    learners = []
    for k in range(n_learners):
        rows = _stratified_bootstrap(y, rng)
        learners.append(
            _learner(seed + k, n_classes, balanced=w is None).fit(
                X[rows], y[rows], sample_weight=None if w is None else w[rows]
            )
        )
    classifier = _learner(seed, n_classes, balanced=w is None).fit(X, y, sample_weight=w)
    return FittedCommittee(
        classes=np.unique(y),
        learners=learners,
        classifier=classifier,
        columns=columns,
        n_features=n_features,
        parameters={
            "n_learners": n_learners,
            "seed": seed,
            "learner": f"LogisticRegression(C=1, {'balanced' if w is None else 'weighted'}, "
            f"{_learner(seed, n_classes).solver})",
            "weighted": w is not None,
        },
    )


def cross_validated_accuracy(
    X: Any, y: np.ndarray, groups: np.ndarray, *, seed: int = 0, folds: int = 5
) -> dict[str, Any]:
    """Out-of-fold accuracy of the classifier, overall and per group (language)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = np.asarray(y)
    if sparse.issparse(X):
        X = sparse.csr_matrix(X)
        X = X[:, np.unique(X.indices)]  # see FittedCommittee.columns
    smallest = int(np.unique(y, return_counts=True)[1].min())
    k = min(folds, smallest)
    if k < 2:
        return {"overall": None, "folds": 0, "languages": {}}
    predicted = cross_val_predict(
        _learner(seed, len(np.unique(y))),
        X,
        y,
        cv=StratifiedKFold(n_splits=k, shuffle=True, random_state=seed),
    )
    correct = predicted == y
    languages = {
        str(g): {
            "accuracy": round(float(correct[groups == g].mean()), 4),
            "n": int((groups == g).sum()),
        }
        for g in sorted(set(groups.tolist()))
    }
    return {"overall": round(float(correct.mean()), 4), "folds": k, "languages": languages}


# ---------------------------------------------------------------------------------------
# Vectorised measures
# ---------------------------------------------------------------------------------------


def _stacked_weights(committee: FittedCommittee) -> tuple[np.ndarray, np.ndarray]:
    """Every member's coefficients side by side, so one product scores the whole committee."""
    if committee._weights is None:
        coefs, intercepts = [], []
        for est in [*committee.learners, committee.classifier]:
            coef = est.coef_.toarray() if sparse.issparse(est.coef_) else np.asarray(est.coef_)
            coefs.append(coef)
            intercepts.append(np.asarray(est.intercept_))
        fitted = np.concatenate(coefs).T
        if committee.columns is None:
            weights = np.ascontiguousarray(fitted, dtype=np.float64)
        else:
            # Back in the full feature space, so pool features need no column selection.
            weights = np.zeros((committee.n_features, fitted.shape[1]), dtype=np.float64)
            weights[committee.columns] = fitted
        committee._weights = (weights, np.concatenate(intercepts).astype(np.float64))
    return committee._weights


def _decision(committee: FittedCommittee, X: Any) -> list[np.ndarray]:
    """Decision values of each member and then the classifier: (n,) for two classes, (n, C) otherwise."""
    if committee._last is not None and committee._last[0]() is X:
        return committee._last[1]
    decisions = _decision_compute(committee, X)
    try:
        committee._last = (weakref.ref(X), decisions)
    except TypeError:  # not weak-referenceable: just do not remember
        committee._last = None
    return decisions


def _decision_compute(committee: FittedCommittee, X: Any) -> list[np.ndarray]:
    weights, intercepts = _stacked_weights(committee)
    scores = X @ weights
    scores = (
        np.asarray(scores.toarray() if sparse.issparse(scores) else scores, dtype=np.float64)
        + intercepts
    )
    per = 1 if len(committee.classes) == 2 else len(committee.classes)
    return [
        scores[:, i * per : (i + 1) * per].squeeze(1)
        if per == 1
        else scores[:, i * per : (i + 1) * per]
        for i in range(len(committee.learners) + 1)
    ]


def _proba(decision: np.ndarray) -> np.ndarray:
    """scikit-learn's LogisticRegression.predict_proba from decision values."""
    from scipy.special import expit, softmax

    if decision.ndim == 1:
        p1 = expit(decision)
        return np.column_stack([1 - p1, p1])
    return softmax(decision, axis=1)


def _vote(decision: np.ndarray) -> np.ndarray:
    """Class index a member votes for (LogisticRegression.predict)."""
    if decision.ndim == 1:
        return (decision > 0).astype(np.int64)
    return decision.argmax(axis=1)


def _entropy_rows(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0.0)
    return -terms.sum(axis=1)


def vote_entropy(committee: FittedCommittee, X: Any) -> np.ndarray:
    decisions = _decision(committee, X)[:-1]
    votes = np.column_stack([_vote(d) for d in decisions])
    counts = np.stack([(votes == c).sum(axis=1) for c in range(len(committee.classes))], axis=1)
    return _entropy_rows(counts / len(decisions))


def max_disagreement(committee: FittedCommittee, X: Any) -> np.ndarray:
    probas = np.stack(
        [_proba(d) for d in _decision(committee, X)[:-1]], axis=1
    )  # (n, members, classes)
    consensus = probas.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(probas > 0, probas * np.log(probas / consensus), 0.0).sum(axis=2)
    return kl.max(axis=1)


def classifier_entropy(committee: FittedCommittee, X: Any) -> np.ndarray:
    return _entropy_rows(_proba(_decision(committee, X)[-1]))


def predict(committee: FittedCommittee, X: Any) -> np.ndarray:
    """The classifier's predicted class per row."""
    return committee.classes[_vote(_decision(committee, X)[-1])]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, ties broken by position (deterministic, unlike argpartition)."""
    order = np.lexsort((np.arange(len(scores)), -np.asarray(scores)))
    return order[:k]


# ---------------------------------------------------------------------------------------
# The same through modAL (tests and bench/al.py)
# ---------------------------------------------------------------------------------------


def modal_committee(committee: FittedCommittee) -> Any:
    """modAL's Committee over the already-fitted members (no modAL fit, see the module doc)."""
    from modAL.models import ActiveLearner, Committee

    return Committee(learner_list=[ActiveLearner(estimator=est) for est in committee.learners])


def modal_vote_entropy(committee: FittedCommittee, X: Any) -> np.ndarray:
    from modAL.disagreement import vote_entropy as modal_ve

    return modal_ve(modal_committee(committee), committee.restrict(X))


def modal_max_disagreement(committee: FittedCommittee, X: Any) -> np.ndarray:
    from modAL.disagreement import KL_max_disagreement

    return KL_max_disagreement(modal_committee(committee), committee.restrict(X))


def modal_classifier_entropy(committee: FittedCommittee, X: Any) -> np.ndarray:
    from modAL.models import ActiveLearner
    from modAL.uncertainty import classifier_entropy as modal_ce

    return modal_ce(ActiveLearner(estimator=committee.classifier), committee.restrict(X))


MODAL_STRATEGIES = {
    "vote_entropy": "modAL.disagreement.vote_entropy_sampling",
    "max_disagreement": "modAL.disagreement.max_disagreement_sampling",
    "classifier_entropy": "modAL.uncertainty.entropy_sampling",
}


def modal_query(committee: FittedCommittee, X: Any, *, strategy: str, n: int) -> np.ndarray:
    """The indices modAL's own query strategy picks."""
    from modAL.disagreement import max_disagreement_sampling, vote_entropy_sampling
    from modAL.models import ActiveLearner
    from modAL.uncertainty import entropy_sampling

    X = committee.restrict(X)
    if strategy == "classifier_entropy":
        learner = ActiveLearner(estimator=committee.classifier, query_strategy=entropy_sampling)
        idx, _ = learner.query(X, n_instances=n)
        return np.asarray(idx)
    query = {"vote_entropy": vote_entropy_sampling, "max_disagreement": max_disagreement_sampling}[
        strategy
    ]
    modal = modal_committee(committee)
    modal.query_strategy = query
    idx, _ = modal.query(X, n_instances=n)
    return np.asarray(idx)


VECTORISED = {
    "vote_entropy": vote_entropy,
    "max_disagreement": max_disagreement,
    "classifier_entropy": classifier_entropy,
}
