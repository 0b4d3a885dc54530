"""MACI, model-agnostic causal inference against language bias.

1. A bias-word dictionary mined from the training split: for every token id (special tokens
   skipped) count its occurrences per class; CV = std / mean of those counts over the classes;
   keep tokens with CV >= 0.1 and, of those, the 100 most frequent. For the 3-class task
   (negative / neutral / positive, the reference's "binary") the reference takes the CV over the
   negative and positive counts only (:func:`reference_cv_classes`): over all three, the smaller
   neutral class alone puts every evenly used word above CV 0.1, and the dictionary becomes the
   most frequent words whatever their polarity. Tokens never seen in those classes are skipped.
2. Counterfactual text: special tokens and bias words stay, every other real token becomes
   [MASK] (see :meth:`robustmm.methods.cider.network.CIDerNet.prepare`).
3. Inference: score = log p(x_t, x_a, x_v) - tau * log p(x_t^cf, x_a, x_v), with tau chosen on
   the validation split (the reference picks it on the test set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robustmm.methods.cider.network import BERT_SPECIAL_IDS

#: tau in {0, 0.1, ..., 3.0}, the reference grid
DEFAULT_TAU_GRID: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(31))


@dataclass
class BiasWords:
    """Mined bias words, most frequent first, with their per-class counts and CV."""

    ids: list[int]
    counts: dict[int, list[int]]
    cv: dict[int, float]

    def describe(self, limit: int = 20) -> list[dict]:
        return [{"token_id": t, "count": int(sum(self.counts[t])), "per_class": self.counts[t],
                 "cv": round(self.cv[t], 3)} for t in self.ids[:limit]]


def reference_cv_classes(num_classes: int) -> tuple[int, ...] | None:
    """The classes the reference's CV is taken over: negative and positive (0 and 2) of the
    3-class negative / neutral / positive task, every class otherwise (None)."""
    return (0, 2) if num_classes == 3 else None


def mine_bias_words(token_ids: np.ndarray, valid: np.ndarray, labels: np.ndarray, num_classes: int,
                    cv_threshold: float = 0.1, top_k: int = 100,
                    special_ids: tuple[int, ...] = BERT_SPECIAL_IDS,
                    cv_classes: tuple[int, ...] | None = None) -> BiasWords:
    """Bias-word dictionary of a training split: ``token_ids`` (N, L), ``valid`` (N, L) real
    positions, ``labels`` (N,) class indices in [0, num_classes). ``cv_classes``: the classes
    whose counts the CV is taken over (None: all); tokens with no count there are skipped.
    ``counts`` lists every class's count."""
    token_ids, valid, labels = np.asarray(token_ids), np.asarray(valid, bool), np.asarray(labels).astype(np.int64)
    if token_ids.shape != valid.shape or token_ids.shape[0] != labels.shape[0]:
        raise ValueError(f"token_ids {token_ids.shape}, valid {valid.shape} and labels {labels.shape} disagree")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be class indices in [0, {num_classes - 1}]")
    position_class = np.broadcast_to(labels[:, None], token_ids.shape)
    keep = valid & ~np.isin(token_ids, special_ids)
    tokens, classes = token_ids[keep], position_class[keep]
    vocab, index = np.unique(tokens, return_inverse=True)
    counts = np.zeros((vocab.size, num_classes), dtype=np.int64)
    np.add.at(counts, (index, classes), 1)
    cols = list(range(num_classes)) if cv_classes is None else list(cv_classes)
    if not cols or min(cols) < 0 or max(cols) >= num_classes:
        raise ValueError(f"cv_classes must name classes in [0, {num_classes - 1}], got {cv_classes}")
    sub = counts[:, cols]
    mean = sub.mean(axis=1)
    seen = mean > 0  # with cv_classes a token may occur only in the other classes
    cv = np.zeros(vocab.size)
    cv[seen] = sub[seen].std(axis=1) / mean[seen]
    chosen = np.flatnonzero(seen & (cv >= cv_threshold))
    # most frequent first; ties by token id so the dictionary is reproducible
    chosen = chosen[np.lexsort((vocab[chosen], -counts[chosen].sum(axis=1)))][:top_k]
    ids = [int(vocab[i]) for i in chosen]
    return BiasWords(ids, {int(vocab[i]): counts[i].tolist() for i in chosen},
                     {int(vocab[i]): float(cv[i]) for i in chosen})


def best_tau(curve: dict[float, float]) -> float:
    """The tau with the best (largest) validation score; ties go to the smallest tau, the
    weakest correction that is as good."""
    finite = {t: v for t, v in curve.items() if v is not None and math.isfinite(v)}
    if not finite:
        return 0.0
    top = max(finite.values())
    return min(t for t, v in finite.items() if v == top)
