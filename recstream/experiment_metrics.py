"""Per-experiment, per-arm Prometheus series, measured live in the worker.

Answers and their latency are counted by the view (:meth:`answered`); views,
licence cost, conversions and ratings of recommended-then-watched titles by the
monitor's hooks (:meth:`viewed`, :meth:`rated`), which already attribute a watch to
an answer from the platform's outcome lines.  A user's arms come from the book
(a cached pure function of the user), so no join state is kept here.

    recstream_experiment_answers_total{experiment,arm}
    recstream_experiment_seconds{experiment,arm}            (histogram)
    recstream_experiment_views_total{experiment,arm,recommended}
    recstream_experiment_licence_cost_total{experiment,arm}
    recstream_experiment_rating_sum_total / _ratings_total{experiment,arm}

Conversion per arm = views{recommended="yes"} / answers; cost per view = cost /
views; mean rating = rating_sum / ratings (PromQL ratios of rates).
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from recstream.experiments import ExperimentBook
# Finer than the worker's buckets between 0.1 and 0.6 s, where a slow arm shows.
EXPERIMENT_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.3, 0.4, 0.6, 1.0)


class ExperimentMetrics:
    def __init__(self, registry: CollectorRegistry, book: ExperimentBook) -> None:
        self.book = book
        labels = ["experiment", "arm"]
        self.answers = Counter("recstream_experiment_answers", "answers served, by arm",
                               labels, registry=registry)
        self.latency = Histogram("recstream_experiment_seconds", "answer latency, by arm",
                                 labels, buckets=EXPERIMENT_BUCKETS, registry=registry)
        self.views = Counter("recstream_experiment_views", "watches started by the arm's users",
                             labels + ["recommended"], registry=registry)
        self.cost = Counter("recstream_experiment_licence_cost",
                            "licence cost of the views of the arm's users", labels,
                            registry=registry)
        self.rating_sum = Counter("recstream_experiment_rating_sum",
                                  "sum of ratings of recommended-then-watched titles", labels,
                                  registry=registry)
        self.ratings = Counter("recstream_experiment_ratings",
                               "ratings of recommended-then-watched titles", labels,
                               registry=registry)

    def answered(self, user: int, seconds: float) -> None:
        for exp, arm, _ in self.book.arms_of(user):
            self.answers.labels(exp, arm.name).inc()
            self.latency.labels(exp, arm.name).observe(seconds)

    def viewed(self, user: int, recommended: bool, cost: float) -> None:
        if not self.book.specs:
            return
        for exp, arm, _ in self.book.arms_of(user):
            self.views.labels(exp, arm.name, "yes" if recommended else "no").inc()
            if cost >= 0.0:
                self.cost.labels(exp, arm.name).inc(cost)

    def rated(self, user: int, rating: float) -> None:
        if not self.book.specs:
            return
        for exp, arm, _ in self.book.arms_of(user):
            self.rating_sum.labels(exp, arm.name).inc(rating)
            self.ratings.labels(exp, arm.name).inc()
