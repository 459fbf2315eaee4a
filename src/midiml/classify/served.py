"""How the served classifier is put together: the one place that knows it.

Every model the selection scores and may serve is a tree of scikit-learn estimators:

- a ``Member``: one fitted model of its own stage (``train_classifier@<model>``, the words
  model of ``train_classifier_words``), reading its part of the model input (the numeric
  feature columns, or the words column);
- ``vote``: a soft ``VotingClassifier`` of members (``classifier.vote``);
- ``vote_and_words``: a soft ``VotingClassifier`` of the vote and the words member, weighted
  ``1 - w`` and ``w`` (``classifier.words.weight``);
- each of them inside ``LoneSourcePrior``, which multiplies the probability of a class
  taught by one source by a factor (its ``prior``, chosen by ``lone_source.choose_prior``
  from the held-out-source predictions: model selection, a parameter like any other).

``candidates`` builds them (from ``classifier.served``, a ``_target_`` that
``hydra.utils.instantiate`` builds); the held-out-source scores and the vote's CV score put
the members' refits through the same tree (``with_probabilities``), so the soft vote's
arithmetic is ``VotingClassifier``'s own and nowhere else; ``unfrozen`` gives the same tree
unfitted, for a refit (``sklearn.base.clone`` of every member).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import VotingClassifier
from sklearn.frozen import FrozenEstimator

from midiml.classify.lone_source import apply_prior
from midiml.classify.source_weighting import fit_weighted
from midiml.classify.words_model import as_text
from midiml.represent.features import WORDS_COLUMN

VOTE = "vote"  # soft vote of the tuned feature models (``classifier.vote``)
VOTE_AND_WORDS = "vote_and_words"  # the vote blended with the words model (``classifier.words``)
WORDS = "words"  # the words model's member (``classifier.words``)
MEMO_SIZE = 10_000  # songs whose words' probabilities a member keeps (their words: tens of MB)
NUMBERS = "numbers"  # a member's part of the input: every column but the words


class Member(ClassifierMixin, BaseEstimator):
    """``model`` on its ``part`` of the model input: ``"numbers"`` (every column but the
    words, which are last when present: ``words_model.model_input``) or ``"words"`` (the
    last column, as text). ``name`` is what the held-out-source refits are kept under.

    ``model`` may be fitted and frozen (``FrozenEstimator``): fitting the member then keeps
    it. The words part keeps its answers per song (``_words_proba``)."""

    def __init__(self, name: str = "", model: Any = None, part: str = NUMBERS) -> None:
        self.name = name
        self.model = model
        self.part = part

    def columns_of(self, columns: list[str]) -> list[str]:
        """Which of a model input's ``columns`` this member reads."""
        if self.part == WORDS:
            return [WORDS_COLUMN]
        return [c for c in columns if c != WORDS_COLUMN]

    def _input(self, X: Any) -> np.ndarray:  # noqa: N803
        X = np.asarray(X)
        if self.part == WORDS:
            return as_text(X[:, -1])
        return X[:, :-1].astype(np.float64) if X.dtype == object else X

    def fit(self, X: Any, y: Any, sample_weight: np.ndarray | None = None) -> Member:  # noqa: N803
        """Fit (a clone of) ``model`` on this member's part; ``sample_weight`` per row."""
        self.model_ = fit_weighted(clone(self.model), self._input(X), y, sample_weight)
        self.classes_ = self.model_.classes_
        self._memo: dict[str, np.ndarray] = {}
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        x = self._input(X)
        if self.part != WORDS:
            return self.model_.predict_proba(x)
        return self._words_proba(x)

    def _words_proba(self, text: np.ndarray) -> np.ndarray:
        """The words model's probabilities of ``text``, each distinct song's words read once
        and kept (up to ``MEMO_SIZE`` songs): n-grams are the slow part of a prediction, and
        the evaluation asks again for the same songs (test scores, the blind folder, and
        permutation importance, which predicts batches of copies with a numeric column
        shuffled and the words not)."""
        memo = getattr(self, "_memo", None)
        if not isinstance(memo, dict):
            memo = self._memo = {}
        if not len(text):
            return np.zeros((0, len(self.classes_)))
        codes, distinct = pd.factorize(pd.Series(text, dtype=object))
        new = [t for t in distinct if t not in memo]
        if new:
            if len(memo) + len(new) > MEMO_SIZE:
                memo.clear()
            memo.update(zip(new, self.model_.predict_proba(as_text(new)), strict=True))
        return np.asarray([memo[t] for t in distinct])[codes]

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the kept answers: a saved model is the same whatever it read."""
        state = dict(super().__getstate__())
        state.pop("_memo", None)
        return state

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        return np.asarray(self.classes_)[self.predict_proba(X).argmax(axis=1)]


class Fixed(ClassifierMixin, BaseEstimator):
    """A member that answers with ``proba`` (classes ``classes``): a refit's probabilities,
    put through a tree (``with_probabilities``) as if that refit were the member."""

    def __init__(self, classes: Any = None, proba: Any = None) -> None:
        self.classes = classes
        self.proba = proba

    def fit(self, X: Any = None, y: Any = None, sample_weight: Any = None) -> Fixed:  # noqa: N803
        self.classes_ = np.asarray(self.classes)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        return np.asarray(self.proba)

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        return self.classes_[np.asarray(self.proba).argmax(axis=1)]


class LoneSourcePrior(ClassifierMixin, BaseEstimator):
    """``estimator``'s probabilities with each class's multiplied by its factor in ``prior``
    (class -> factor; None: unchanged) and renormalised: a class the training data knows
    from one source only gets trusted more (``lone_source``). The root of every served
    tree; ``prior`` is set after the fit, from held-out-source predictions."""

    def __init__(self, estimator: Any = None, prior: dict[str, float] | None = None) -> None:
        self.estimator = estimator
        self.prior = prior

    def fit(self, X: Any, y: Any, sample_weight: np.ndarray | None = None) -> LoneSourcePrior:  # noqa: N803
        self.estimator_ = fit_weighted(clone(self.estimator), X, y, sample_weight)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        proba = self.estimator_.predict_proba(X)
        return apply_prior(proba, [str(c) for c in self.classes_], self.prior)

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        return np.asarray(self.classes_)[self.predict_proba(X).argmax(axis=1)]


def _frozen(model: Any) -> Any:
    return model if isinstance(model, FrozenEstimator) else FrozenEstimator(model)


def candidates(
    models: dict[str, Any],
    words: Any | None = None,
    vote: list[str] | None = None,
    words_weight: float = 0.5,
) -> dict[str, Any]:
    """Every model the selection scores, unfitted trees of ``models`` (name -> a fitted model
    of its own stage, frozen here): each model alone, ``vote`` of the listed ones (two or
    more), and the vote blended with ``words`` (the fitted words model) when given. Fit a
    tree (``VotingClassifier`` learns the classes) before use; frozen members stay as they
    are. ``classifier.served`` names this function and its knobs."""
    out: dict[str, Any] = {m: Member(m, _frozen(model)) for m, model in models.items()}
    voters = [m for m in (vote or []) if m in models]
    if len(voters) >= 2:
        out[VOTE] = VotingClassifier([(m, out[m]) for m in voters], voting="soft")
        if words is not None:
            w = float(words_weight)
            out[VOTE_AND_WORDS] = VotingClassifier(
                [(VOTE, out[VOTE]), (WORDS, Member(WORDS, _frozen(words), WORDS))],
                voting="soft",
                weights=[1.0 - w, w],
            )
    return {name: LoneSourcePrior(tree) for name, tree in out.items()}


def input_columns(tree: Any, numeric: list[str]) -> list[str]:
    """The model input of ``tree``: the ``numeric`` feature columns, then the words column
    when a member reads it (``words_model.model_input`` wants the words last)."""
    reads_words = any(m.part == WORDS for m in members(tree).values())
    return [*numeric, *([WORDS_COLUMN] if reads_words else [])]


def members(tree: Any) -> dict[str, Member]:
    """The tree's members by name (each once): the fitted ones of a fitted tree."""
    if isinstance(tree, Member):
        return {tree.name: tree}
    if isinstance(tree, LoneSourcePrior):
        return members(getattr(tree, "estimator_", tree.estimator))
    if isinstance(tree, VotingClassifier):
        parts = getattr(tree, "named_estimators_", None) or dict(tree.estimators)
        return {n: m for e in parts.values() for n, m in members(e).items()}
    raise TypeError(f"not a served-model tree: {type(tree).__name__}")


def fitted_members(tree: Any) -> dict[str, Any]:
    """name -> the fitted model each member of a fitted tree answers with (``Member.model_``,
    the frozen fit of its own stage): one object shared by every tree built from the same
    fits (fitting a tree keeps a frozen member as it is), so a saved tree can refer to it in
    another file instead of holding a copy (``pipelines.save_model``)."""
    return {name: member.model_ for name, member in members(tree).items()}


def _replace(tree: Any, leaf: Any) -> Any:
    """``tree`` with every member replaced by ``leaf(member)`` (a new, unfitted tree)."""
    if isinstance(tree, Member):
        return leaf(tree)
    if isinstance(tree, LoneSourcePrior):
        return clone(tree).set_params(estimator=_replace(tree.estimator, leaf))
    return clone(tree).set_params(estimators=[(n, _replace(e, leaf)) for n, e in tree.estimators])


def unfrozen(tree: Any) -> Any:
    """The same tree unfitted: every member's model cloned with its hyperparameters, for a
    refit on other songs or other columns; no class prior (it was chosen for this fit)."""

    def fresh(member: Member) -> Member:
        model = member.model
        model = model.estimator if isinstance(model, FrozenEstimator) else model
        return Member(member.name, clone(model), member.part)

    return _without_prior(_replace(tree, fresh))


def _without_prior(tree: Any) -> Any:
    return tree.set_params(prior=None) if isinstance(tree, LoneSourcePrior) else tree


def with_probabilities(tree: Any, probas: dict[str, np.ndarray], classes: list[str]) -> Any:
    """``tree`` fitted with each member answering ``probas[name]`` (columns: ``classes``):
    its ``predict_proba`` is what the tree would say had its members been those refits,
    before any class prior."""
    fixed = _without_prior(_replace(tree, lambda m: Fixed(list(classes), probas[m.name])))
    labels = np.asarray(classes, dtype=object)
    return fixed.fit(np.zeros((len(labels), 1)), labels)


def combined_proba(tree: Any, probas: dict[str, np.ndarray], classes: list[str]) -> np.ndarray:
    """The tree's probabilities from its members' (``with_probabilities``)."""
    n = len(next(iter(probas.values())))
    return with_probabilities(tree, probas, classes).predict_proba(np.zeros((n, 1)))
