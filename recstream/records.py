"""Every record that crosses a topic, pinned to JSON and a fixed namespace.

Times are seconds since the epoch (floats), read as UTC from the stream's
zone-less local times.  User ids are ints, movie ids the platform's slugs.
Never pickled: each record declares ``serializer='json'``.
"""
from __future__ import annotations

import faust


class _Event(faust.Record, serializer="json", include_metadata=True):
    pass


class WatchMinute(_Event, namespace="recstream.WatchMinute"):
    """``GET /data/m/<movie>/<minute>.mpg``: the user watched one minute."""

    time: float
    user: int
    movie: str
    minute: int


class Rating(_Event, namespace="recstream.Rating"):
    """``GET /rate/<movie>=<rating>``."""

    time: float
    user: int
    movie: str
    rating: int


class AccountCreated(_Event, namespace="recstream.AccountCreated"):
    """``GET /create_account``."""

    time: float
    user: int


class RecommendationOutcome(_Event, namespace="recstream.RecommendationOutcome"):
    """The platform's log of one call to our ``/recommend`` (or its failure).

    ``movies`` holds what the platform parsed from a status-200 answer;
    ``error`` holds the result text of anything else.
    """

    time: float
    user: int
    server: str
    status: int
    movies: list[str]
    error: str
    latency_ms: int


class Rejected(faust.Record, serializer="json", namespace="recstream.Rejected"):
    """A line that failed validation, kept verbatim with the reason."""

    reason: str
    line: str
    topic: str = ""
    partition: int = -1
    offset: int = -1


class MovieUpdate(faust.Record, serializer="json", namespace="recstream.MovieUpdate"):
    """What one batch of user events did to one movie, for the movie's owner.

    One message per movie per ingest batch (not per event): ``plays`` new
    viewers; ``ratings`` as ``[rating, old_rating or None]`` pairs (a re-rating
    carries the rating it replaces); ``steps`` the item halves of online-MF
    steps as ``[error, weight, *user_vector_before_its_step]``.
    """

    movie: str
    time: float
    plays: int = 0
    ratings: list = []
    steps: list = []


class RecommendationServed(faust.Record, serializer="json", namespace="recstream.RecommendationServed"):
    """Provenance of one answer of ``/recommend``, for downstream consumers."""

    request_id: str
    time: float
    user: int
    movies: list[str]
    model_version: str
    source: str
    latency_ms: float
    worker: str


EVENT_TYPES = (WatchMinute, Rating, AccountCreated, RecommendationOutcome)
