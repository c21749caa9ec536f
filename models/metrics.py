"""Offline metrics as small pure functions, each checkable by hand.

Ranking metrics take one user's recommendation list (best first) and the set
of that user's relevant held-out items; binary relevance throughout.
Definitions follow the usual literature so numbers compare with papers:
Recall@k divides by all relevant items, NDCG@k and AP@k normalise by the
best achievable score with ``min(|relevant|, k)`` hits.
"""
from __future__ import annotations

import math
from typing import Collection, Iterable, Mapping, Sequence

import numpy as np


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    err = np.asarray(predicted, np.float64) - np.asarray(actual, np.float64)
    return float(np.sqrt(np.mean(err ** 2))) if err.size else float("nan")


def mae(predicted: np.ndarray, actual: np.ndarray) -> float:
    err = np.asarray(predicted, np.float64) - np.asarray(actual, np.float64)
    return float(np.mean(np.abs(err))) if err.size else float("nan")


def recall_at_k(recommended: Sequence, relevant: Collection, k: int) -> float:
    if not relevant:
        return float("nan")
    hits = sum(1 for item in recommended[:k] if item in relevant)
    return hits / len(relevant)


def precision_at_k(recommended: Sequence, relevant: Collection, k: int) -> float:
    hits = sum(1 for item in recommended[:k] if item in relevant)
    return hits / k if k > 0 else float("nan")


def ndcg_at_k(recommended: Sequence, relevant: Collection, k: int) -> float:
    if not relevant:
        return float("nan")
    dcg = sum(1.0 / math.log2(rank + 2)
              for rank, item in enumerate(recommended[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(relevant), k)))
    return dcg / ideal


def average_precision_at_k(recommended: Sequence, relevant: Collection, k: int) -> float:
    """Mean of precision@rank over the ranks that hit, over ``min(|relevant|, k)``."""
    if not relevant:
        return float("nan")
    hits, total = 0, 0.0
    for rank, item in enumerate(recommended[:k]):
        if item in relevant:
            hits += 1
            total += hits / (rank + 1)
    return total / min(len(relevant), k)


def catalogue_coverage(lists: Iterable[Sequence], catalogue: Collection) -> float:
    """Share of the catalogue that appears in at least one list."""
    if not catalogue:
        return float("nan")
    shown = set().union(*map(set, lists)) if lists else set()
    return len(shown & set(catalogue)) / len(catalogue)


def novelty(lists: Iterable[Sequence], popularity: Mapping, n_users: int) -> float:
    """Mean self-information ``-log2(n_i / n_users)`` of recommended items (higher: less
    mainstream); items unseen in training count as seen once."""
    bits = [-math.log2(max(popularity.get(item, 0), 1) / max(n_users, 1))
            for items in lists for item in items]
    return float(np.mean(bits)) if bits else float("nan")


def popularity_bias(lists: Iterable[Sequence], popularity: Mapping, n_users: int) -> float:
    """Average recommendation popularity (ARP): per user, the mean share of training
    users who interacted with each recommended item, averaged over users."""
    per_user = [np.mean([popularity.get(item, 0) / max(n_users, 1) for item in items])
                for items in lists if len(items)]
    return float(np.mean(per_user)) if per_user else float("nan")
