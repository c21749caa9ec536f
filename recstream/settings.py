"""One frozen configuration object, read from the environment once at start.

Every knob of the service lives here with its default; nothing else reads
``os.environ``.  ``Settings.from_env()`` validates and fails with one clear
message naming the variable, so a typo never surfaces as a stack trace deep
inside a worker.  Tests build it with ``Settings.from_mapping({...})``.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
from pathlib import Path
from typing import Any, Mapping

ENV_PREFIX = "RECSTREAM_"


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range."""


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    # Kafka: an empty broker means "start the embedded Tansu broker".  ``tansu://``
    # selects the transport that works around Tansu's end offsets (recstream.tansu).
    broker: str = ""
    embedded_broker_port: int = 9092
    app_id: str = "recstream"
    topic: str = "movielog"
    partitions: int = 8
    replication_factor: int = 1
    # Consumer-group timeouts (seconds).  A new group's first join waits up to
    # the rebalance timeout on some brokers (Tansu), so it bounds start-up time.
    session_timeout_s: float = 10.0
    rebalance_timeout_s: float = 10.0
    # Local state.
    data_dir: str = "var/data"
    # HTTP.
    web_host: str = "0.0.0.0"
    web_port: int = 8082
    # How other workers reach this one (partition-owner routing); default
    # http://<hostname>:<web_port>.
    canonical_url: str = ""
    # Below the front's per-attempt timeout (deploy/nginx: proxy_read_timeout 250 ms) with
    # room to spare: a forward that times out still leaves time to serve the fallback
    # before the front gives up on this attempt.  A healthy owner answers in milliseconds.
    route_timeout_s: float = 0.12
    # Serving isolation (#11), opt-in until measured on a quiet machine: the HTTP server
    # on its own event loop in its own thread, so a request does not queue behind an
    # ingest batch, a Faust callback or a table write on the worker's loop; the
    # interpreter hands the GIL over every ``serve_switch_ms`` (Python's default: 5 ms).
    web_thread: bool = False
    serve_switch_ms: float = 0.5
    operator_token: str = ""
    # Platform APIs.
    api_url: str = "http://127.0.0.1:8080"
    api_timeout_s: float = 2.0
    api_batch_size: int = 200
    api_retry_s: float = 30.0
    # Stream contract.
    rating_min: int = 1
    rating_max: int = 5
    max_user_id: int = 1_000_000
    max_minute: int = 1_440
    # Per-user state.
    history_limit: int = 200
    watch_complete_minutes: int = 60
    # Online model.
    # 128: chosen on the validation cuts of ml-latest-small and ml-100k (docs/live-path.md
    # §11); its phase-3 loss on the service was stale item steps after the swap (fixed).
    n_factors: int = 128
    learning_rate: float = 0.02
    regularization: float = 0.05
    implicit_weight: float = 0.3
    init_scale: float = 0.05
    max_step: float = 1.0
    popularity_half_life_h: float = 72.0
    popularity_blend: float = 0.15
    seed: int = 7
    # Serving.
    top_k: int = 20
    exclude_watched: bool = True
    refresh_interval_s: float = 0.1
    refresh_batch: int = 256
    # Ingest.
    ingest_batch: int = 1000
    ingest_within_s: float = 0.05
    # The worker's event loop (#11): ``uvloop`` (libuv) or ``aio`` (asyncio's own); read by
    # ``recstream worker`` before Faust is imported (Faust's ``--loop`` wins when given).
    event_loop: str = "aio"
    # Model registry and retraining: versions live under ``registry_dir`` (a volume
    # shared by every worker in production); 0 hours disables the scheduled retrain.
    registry_dir: str = "var/models"
    retrain_every_h: float = 1.0  # issue #10: on by default (was 0)
    retrain_window_h: float = 0.0  # hours of event time; 0 = everything held (issue #10)
    retrain_on_worker: str = ""  # worker id (hostname) that runs the timer; "" = any single one
    gate_tolerance: float = 0.02
    # Cold start: self-descriptions fetched from the user API and folded in.
    coldstart: bool = True
    coldstart_concurrency: int = 4
    # #13: a request for a user without a vector waits at most this for the user API (0 = never);
    # 0.25 s gave 1.4% grader timeouts at load 33 on 2 cores (docs/benchmarks.md, #13 phase 3)
    coldstart_wait_s: float = 0.15
    # Monitoring windows, in seconds of stream time.
    attribution_window_s: float = 3600.0
    drift_window_s: float = 3600.0
    # Provenance of every answer on the recommendations topic.
    provenance: bool = True
    # Issue #14 (responsible operation).  Movie ids waiting for the movie API to confirm
    # them (agents.metadata): at most this many are remembered; the oldest are dropped.
    unconfirmed_max: int = 100_000
    # Routing between workers: the header is honoured only with a valid HMAC under this
    # secret (shared by the workers; web.routing).  Empty: a secret drawn at start, so only
    # this process's own forwards are trusted (set it for several workers).
    route_secret: str = ""
    # Per-client rate limit on /recommend (token bucket per client address; 0 disables).
    # Graders are never throttled: addresses in ``grader_cidrs`` (comma-separated CIDRs).
    client_rate_per_s: float = 0.0
    client_burst: int = 200
    grader_cidrs: str = ""
    # Live sybil-wave detector (agents.attack_watch): distinct young accounts per worker.
    sybil_min_accounts: int = 10
    # Issue #14: the live attack detectors (sybil, scraping) and the live skip of the
    # suspects' events; off only to measure what they change (bench/attack_live.py).
    attack_watch: bool = True
    # A movie a sybil wave pushed is served to nobody for this long (stream seconds) after
    # its last suspect (agents.attack_watch.AlarmBlock); 0 = never withheld.
    sybil_hold_s: float = 86_400.0
    # Live fairness monitor (agents.fairness_watch): window of stream time, the relative
    # shortfall bound of requirement F1, and an optional operator ``user,group`` file.
    fairness_window_s: float = 21_600.0
    fairness_bound: float = 0.2
    fairness_groups_file: str = ""
    # Feedback-loop mitigation in serving (tables/mitigation.py): long-tail re-rank weight
    # and exploration slots per answer; both 0 = off.
    feedback_rerank_weight: float = 0.0
    feedback_explore_slots: int = 0
    # #12: drift alarms calibrated to this many false alarms per day over all features.
    drift_alarms_per_day: float = 1.0
    # Issue #10 (live path): retrain also when this many new interactions (new (user,
    # movie) pairs watched or rated) arrived since the last one, checked every minute;
    # the promotion gate's minimum number of paired holdout users.
    retrain_min_new_interactions: int = 5_000
    gate_min_users: int = 100
    # The model a retrain fits (``recstream train``'s default): ``ials`` = implicit ALS over
    # every (user, movie) watched or rated; user vectors are then folded in exactly on each
    # of the user's events (agents/user_writer.py).  ``als`` = biased MF on ratings + SGD.
    retrain_model: str = "ials"
    ials_regularization: float = 10.0
    ials_alpha: float = 1.0
    # A user's interaction weighs 2^(-n/h) at fold-in, n = their interactions since (0: off).
    # 10: chosen with n_factors on the validation cuts (docs/live-path.md §11).
    ials_recent_half_life: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Build from ``RECSTREAM_<FIELD>`` variables (upper case)."""
        environ = os.environ if environ is None else environ
        raw = {
            f.name: environ[ENV_PREFIX + f.name.upper()]
            for f in dataclasses.fields(cls)
            if ENV_PREFIX + f.name.upper() in environ
        }
        return cls.from_mapping(raw, source="environment variable " + ENV_PREFIX)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, source: str = "setting ") -> "Settings":
        """Build from a mapping of field name to value (strings are converted)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in raw.items():
            # The default's type (getattr(cls, name) is a slot descriptor: slots=True).
            kind = type(fields[name].default)
            label = source + (name.upper() if source.startswith("environment") else name)
            values[name] = _convert(kind, value, label)
        settings = cls(**values)
        settings.validate()
        return settings

    def replace(self, **changes: Any) -> "Settings":
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new

    def validate(self) -> None:
        checks = [
            (self.partitions >= 1, "partitions must be >= 1"),
            (1 <= self.web_port <= 65535, "web_port must be a TCP port"),
            (1 <= self.embedded_broker_port <= 65535, "embedded_broker_port must be a TCP port"),
            (self.rating_min < self.rating_max, "rating_min must be below rating_max"),
            (self.max_user_id >= 1, "max_user_id must be >= 1"),
            (1 <= self.top_k <= 100, "top_k must be within 1..100"),
            (1 <= self.n_factors <= 512, "n_factors must be within 1..512"),
            (0 < self.learning_rate < 1, "learning_rate must be within (0, 1)"),
            (0 <= self.regularization < 10, "regularization must be within [0, 10)"),
            (1 <= self.api_batch_size <= 200, "api_batch_size must be within 1..200 (API limit)"),
            (self.history_limit >= 1, "history_limit must be >= 1"),
            (self.refresh_interval_s > 0, "refresh_interval_s must be > 0"),
            (0 < self.serve_switch_ms <= 100, "serve_switch_ms must be within (0, 100]"),
            (self.ingest_batch >= 1, "ingest_batch must be >= 1"),
            (self.event_loop in ("aio", "uvloop"), "event_loop must be aio or uvloop"),
            (bool(self.topic.strip()), "topic must not be empty"),
            (self.retrain_every_h >= 0, "retrain_every_h must be >= 0 (0 disables it)"),
            (self.retrain_window_h >= 0, "retrain_window_h must be >= 0 (0: all data)"),
            (self.retrain_min_new_interactions >= 0,
             "retrain_min_new_interactions must be >= 0 (0: time only)"),
            (self.gate_min_users >= 1, "gate_min_users must be >= 1"),
            (self.retrain_model in ("als", "ials"), "retrain_model must be als or ials"),
            (self.ials_recent_half_life >= 0, "ials_recent_half_life must be >= 0 (0: off)"),
            (self.ials_regularization > 0 and self.ials_alpha > 0,
             "ials_regularization and ials_alpha must be > 0"),
            (0 <= self.gate_tolerance < 1, "gate_tolerance must be within [0, 1)"),
            (self.coldstart_concurrency >= 1, "coldstart_concurrency must be >= 1"),
            (0 <= self.coldstart_wait_s <= 0.4, "coldstart_wait_s must be within [0, 0.4] s "
             "(the graders' deadline is 600 ms)"),
            (self.attribution_window_s > 0, "attribution_window_s must be > 0"),
            (self.drift_window_s > 0, "drift_window_s must be > 0"),
            (self.unconfirmed_max >= 1, "unconfirmed_max must be >= 1"),
            (self.client_rate_per_s >= 0, "client_rate_per_s must be >= 0 (0 disables it)"),
            (self.client_burst >= 1, "client_burst must be >= 1"),
            (self.sybil_min_accounts >= 2, "sybil_min_accounts must be >= 2"),
            (self.fairness_window_s > 0, "fairness_window_s must be > 0"),
            (self.sybil_hold_s >= 0, "sybil_hold_s must be >= 0"),
            (0 < self.fairness_bound < 1, "fairness_bound must be within (0, 1)"),
            (self.feedback_rerank_weight >= 0, "feedback_rerank_weight must be >= 0"),
            (0 <= self.feedback_explore_slots <= self.top_k,
             "feedback_explore_slots must be within [0, top_k]"),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(f"invalid configuration: {message}")
        for part in self.grader_cidrs.split(","):
            try:
                if part.strip():
                    ipaddress.ip_network(part.strip(), strict=False)
            except ValueError:
                raise SettingsError(f"invalid configuration: grader_cidrs entry {part.strip()!r} "
                                    "is not an address or CIDR") from None
        if self.broker and not self.broker.startswith(("kafka://", "aiokafka://", "tansu://")):
            raise SettingsError(
                f"invalid configuration: broker {self.broker!r} must look like kafka://host:port "
                "(or tansu://host:port for a Tansu broker)"
            )

    @property
    def broker_url(self) -> str:
        """The broker Faust connects to (the embedded Tansu one when none is set)."""
        return self.broker or f"tansu://127.0.0.1:{self.embedded_broker_port}"

    @property
    def bootstrap_servers(self) -> list[str]:
        """host:port list for plain aiokafka clients."""
        urls = self.broker_url.split("://", 1)[1]
        return [u.strip() for u in urls.replace(";", ",").split(",") if u.strip()]

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def registry_path(self) -> Path:
        return Path(self.registry_dir)


def _convert(kind: type, value: Any, label: str) -> Any:
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    text = str(value).strip()
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(text)
        if kind is int:
            return int(text.replace("_", ""))
        if kind is float:
            return float(text)
        return text
    except ValueError:
        raise SettingsError(
            f"invalid configuration: {label} = {text!r} is not a valid {kind.__name__}"
        ) from None
