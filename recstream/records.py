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


class UserProfile(_Event, namespace="recstream.UserProfile"):
    """What the user API told us about a new account, and the first vector made from it.

    Produced by :mod:`agents.profiles` onto the events topic keyed by user and
    applied by the user writer only while the user has no vector (learned state
    is never overwritten).  ``vector`` is empty when none could be made (no
    factor model or prior yet): the user keeps the popularity fallback.
    ``named`` are the catalogue movies the self-description named (excluded
    from answers); ``source`` says how the vector was made: ``foldin`` (liked /
    disliked titles + prior), ``prior`` (demographic prior alone) or ``none``.
    A vector folded against another model ``generation`` than the one serving
    when it is applied is dropped (it lives in another factor space).
    """

    time: float
    user: int
    age: int = -1            # -1: unknown
    gender: str = ""
    occupation: str = ""
    named: list = []
    vector: list = []
    bias: float = 0.0
    source: str = "none"
    model_version: str = ""
    generation: int = 0      # the serving model's generation the vector was folded against


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
    steps as ``[error, weight, *user_vector_before_its_step]``, learnt under model
    ``generation`` (the owner drops steps of any other: another factor space).
    """

    movie: str
    time: float
    plays: int = 0
    ratings: list = []
    steps: list = []
    play_marks: list = []
    rating_marks: list = []
    generation: int = 0


class RecommendationServed(faust.Record, serializer="json",
                           namespace="recstream.RecommendationServed"):
    """Provenance of one answer of ``/recommend``, for downstream consumers.

    Published (keyed by user) on ``<app>-recommendations`` by the worker that
    answered.  ``model_version`` is the promoted registry version the vectors
    are based on (``online``: no batch model yet) and ``generation`` its
    promotion counter; online steps since the promotion ride on top of it.
    ``source`` is how the answer was made (personal, popular, fallback,
    invalid, owner_down, error); ``fallback_reason`` says why a fallback was
    served; ``guardrails`` lists the filters that removed titles; ``arm`` is
    the experiment arm (empty when no experiment runs); ``code_version`` the
    worker's code.  ``time`` is the worker's wall clock (epoch seconds);
    ``stream_time`` the stream's clock, which the platform's outcome lines use.
    """

    request_id: str
    time: float
    user: int
    movies: list[str]
    model_version: str
    source: str
    latency_ms: float
    worker: str
    generation: int = 0
    fallback_reason: str = ""
    guardrails: list = []
    arm: str = ""
    code_version: str = ""
    stream_time: float = 0.0  # newest movielog event time the worker had seen (stream clock)
    teams: str = ""  # interleaving arms (issue #13): the ranker of each slot, "ABBA…"


EVENT_TYPES = (WatchMinute, Rating, AccountCreated, RecommendationOutcome)
INTERNAL_EVENT_TYPES = (UserProfile,)  # produced by us onto the user-profiles topic, never parsed
