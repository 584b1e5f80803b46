"""Every metric against scikit-learn on seeded data, ties and edge cases included."""

import numpy as np
import pytest
from sklearn import metrics as sk

from amploop.evaluate import metrics as m


def _probs(rng, n, c, ties=False):
    logits = rng.normal(size=(n, c))
    if ties:
        logits = np.round(logits, 1)
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("ties", [False, True])
def test_classification_metrics_match_scikit_learn(n_classes, ties):
    rng = np.random.default_rng(n_classes + 10 * ties)
    p = _probs(rng, 500, n_classes, ties)
    y = np.array([rng.choice(n_classes, p=row) for row in p])  # labels correlated with p
    predicted = p.argmax(1)
    got = m.classification_metrics(y, p)
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, predicted))
    assert got["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, predicted))
    for ours, theirs in (
        ("precision_macro", sk.precision_score),
        ("recall_macro", sk.recall_score),
        ("f1_macro", sk.f1_score),
    ):
        assert got[ours] == pytest.approx(theirs(y, predicted, average="macro", zero_division=0))
    if n_classes == 2:
        assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y, p[:, 1]))
        assert got["pr_auc"] == pytest.approx(sk.average_precision_score(y, p[:, 1]))
        assert got["brier"] == pytest.approx(sk.brier_score_loss(y, p[:, 1]))
    else:
        assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y, p, multi_class="ovr", average="macro"))
        onehot = np.eye(n_classes)[y]
        assert got["pr_auc"] == pytest.approx(sk.average_precision_score(onehot, p, average="macro"))
    assert got["log_loss"] == pytest.approx(sk.log_loss(y, p, labels=list(range(n_classes))))
    assert got["confusion_matrix"] == sk.confusion_matrix(y, predicted, labels=list(range(n_classes))).tolist()


def test_regression_metrics_match_scikit_learn():
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 300)
    predicted = y + rng.normal(0, 1, 300)
    got = m.regression_metrics(y, predicted)
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(y, predicted))
    assert got["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y, predicted)))
    assert got["r2"] == pytest.approx(sk.r2_score(y, predicted))
    assert got["mape"] == pytest.approx(sk.mean_absolute_percentage_error(y, predicted))


def test_auc_of_a_single_class_is_nan_not_an_error():
    p = np.array([[0.3, 0.7], [0.6, 0.4]])
    assert np.isnan(m.roc_auc(np.array([1, 1]), p))


def test_per_class_scores_are_named():
    y, p = np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    per_class = m.classification_metrics(y, p, ["<=50K", ">50K"])["per_class"]
    assert per_class[">50K"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2.0}
