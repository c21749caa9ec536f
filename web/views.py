"""HTTP: ``/recommend/{user_id}``, ``/healthz``, ``/readyz``, ``/metrics``.

Plain aiohttp handlers mounted on the Faust worker's own aiohttp application
(one server, one event loop, no Faust view layer on the hot path).  The
recommend view never fails a grader: every id that is not a known user —
malformed, negative, huge, path tricks — and every internal error gets the
popularity fallback with status 200.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import time

import orjson

from aiohttp import web
from prometheus_async import aio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from recstream.api_checks import SentAnswers, checked_answer
from recstream.experiment_metrics import ExperimentMetrics
from recstream.parts import Readiness
from recstream.prometheus import Metrics
from recstream.settings import Settings
from tables.arms import ArmRanker
from tables.memory import UserIndex
from tables.serving import Recommender
from tables.users import UserStore
from web import dashboard
from web.guard import Guard
from web.served_log import ProvenancePublisher, new_request_id, register as register_provenance
from web.routing import REQUEST_ID_HEADER, ROUTED_HEADER, OwnerRouter

log = logging.getLogger(__name__)
TEXT = "text/plain"


def parse_user_id(text: str, max_user_id: int) -> int | None:
    if not text or len(text) > 12 or not (text.isascii() and text.isdigit()):
        return None
    user = int(text)
    return user if user <= max_user_id else None


def make_routes(*, settings: Settings, metrics: Metrics, recommender: Recommender,
                readiness: Readiness, user_store: UserStore, users: UserIndex,
                router: OwnerRouter | None = None,
                publisher: ProvenancePublisher | None = None,
                guard: Guard | None = None,
                arms: ArmRanker | None = None,
                arm_metrics: ExperimentMetrics | None = None,
                sent_answers: SentAnswers | None = None) -> list[web.RouteDef]:
    """The handlers, closed over exactly the parts they read."""
    max_user_id = settings.max_user_id
    count = metrics.requests.labels
    by_user = metrics.answers_by_user.labels
    items_loaded = readiness.items_loaded
    known_items = recommender.items.row_of

    @aio.time(metrics.latency)  # prometheus-async: observes the coroutine's duration
    async def recommend(request: web.Request) -> web.Response:
        started = time.perf_counter()
        if not items_loaded.is_set():
            # Starting (or restarting): the item model is not loaded, so any answer would
            # be empty.  503 makes the front retry another worker (deploy/nginx) and a
            # forwarding peer serve its own fallback.
            count("starting").inc()
            return web.Response(status=503, text="starting", content_type=TEXT,
                                headers={"Retry-After": "1"})
        # Issue #14: the routing header counts only when a peer signed it (web.guard);
        # other clients are rate-limited (graders never) and get 429 when over budget.
        if guard is None:
            routed_in = ROUTED_HEADER in request.headers
        else:
            routed_in = guard.signer.verify(request.headers.get(ROUTED_HEADER), request.path)
            if not routed_in and not guard.limiter.allow(request.remote or ""):
                count("throttled").inc()
                return web.Response(status=429, text="too many requests", content_type=TEXT,
                                    headers={"Retry-After": "1"})
        user = parse_user_id(request.match_info.get("user_id", ""), max_user_id)
        if guard is not None and guard.scraping is not None and not routed_in and user is not None:
            # O(1); detector in a timer.  A client is its address and its User-Agent: one
            # front (or one simulator host) carries several clients (#14 phase 3).
            # With the graders' addresses configured, any other address is an outsider:
            # judged on its requests at once, not on the movielog's echo (#14 phase 4).
            agent = request.headers.get("User-Agent", "")
            guard.scraping.request(f"{request.remote or ''} {agent}", user,
                                   guard.limiter.is_outsider(request.remote or ""))
        guardrails: list[str] = []
        reason = arm = teams = ""
        delay_ms = 0.0
        owner_request_id = ""
        try:
            if user is None:
                line, source, reason = recommender.fallback(), "invalid", "not a user id"
            elif router is not None and not routed_in and \
                    (owner := router.owner_url(user)) is not None:
                routed = await router.forward(owner, request.path) \
                    if router.available(owner) else None
                if routed is not None:
                    (line, owner_request_id), source = routed, "routed"
                else:  # what this worker holds of the user (or the fallback)
                    line, _, guardrails = recommender.answer_with_guardrails(user)
                    source = "owner_down"
                    reason = f"partition owner {owner} unavailable"
            else:
                if arms is not None:  # experiments (issue #13): the user's arm's ranker
                    line, source, guardrails, arm, delay_ms, teams = await arms.answer_now(user, started)
                else:
                    line, source, guardrails = recommender.answer_with_guardrails(user)
                if source == "fallback":
                    reason = "unknown user" if "empty_personal" not in guardrails else \
                        "every ranked title was filtered"
                elif source == "popular":
                    reason = "no learnt vector yet"
        except Exception:  # never a stack trace to a grader; log it and degrade
            log.exception("recommend failed for %r", request.match_info.get("user_id"))
            line, source, reason = recommender.fallback(), "error", "internal error"
        # #12: no answer leaves unchecked (one line, <= 20 unique known ids); a bad one is
        # replaced by the fallback and counted; what we send is kept for its outcome line.
        line, problems = checked_answer(line, known_items, recommender.fallback,
                                        metrics.answer_violations)
        if problems:
            reason = "answer failed its check: " + ",".join(r for _, r in problems)
        if sent_answers is not None and user is not None and source != "routed":
            sent_answers.record(user, line)
        if delay_ms:  # a canary drill's deliberately slow arm (models/experiments/spec.py)
            await asyncio.sleep(delay_ms / 1000.0)
        count(source).inc()
        if guard is not None and source != "routed":  # the owner that answered counts it
            guard.exposure.check(user, line, profile_adult="cold_start_now" in guardrails
                                 and "no_adult" in guardrails and not problems)
        if arm and arm_metrics is not None:
            arm_metrics.answered(user, time.perf_counter() - started)
        returning = user is not None and users.get_row(user) >= 0
        by_user(source, "returning" if returning else "new").inc()
        # A forwarded request is published by the owner that answered it, under
        # the id it sent back: the client gets that id, so it can be traced.
        request_id = owner_request_id or new_request_id()
        if publisher is not None and source != "routed" and settings.provenance:
            publisher.record(request_id, -1 if user is None else user, line, source,
                             (time.perf_counter() - started) * 1000.0, guardrails, reason,
                             arm=arm, teams=teams)
        return web.Response(text=line, content_type=TEXT,
                            headers={REQUEST_ID_HEADER: request_id})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type=TEXT)

    async def readyz(request: web.Request) -> web.Response:
        missing = readiness.missing()
        metrics.ready.set(0 if missing else 1)
        if missing:
            return web.Response(status=503, text="not ready: " + ", ".join(missing),
                                content_type=TEXT)
        return web.Response(text="ready", content_type=TEXT)

    async def metrics_view(request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def user_state(request: web.Request) -> web.Response:
        """Operator view of one user's state (behind ``RECSTREAM_OPERATOR_TOKEN``)."""
        denied = _check_token(request, settings.operator_token)
        if denied is not None:
            return denied
        user = parse_user_id(request.match_info.get("user_id", ""), max_user_id)
        if user is None:
            return web.json_response({"error": "not a user id"}, status=400)
        history = user_store.peek(user)
        row = users.get_row(user)
        body = {
            "user": user,
            "known": history is not None,
            "watches": history.watches if history else {},
            "ratings": history.ratings if history else {},
            "movies": len(history.items) if history else 0,  # the complete set (issue #10)
            "created": history.created if history else None,
            "has_vector": bool(row >= 0 and users.has_vector[row]),
            "answer_fresh": bool(row >= 0 and users.fresh[row]),
        }
        return web.json_response(body, dumps=lambda obj: orjson.dumps(obj).decode())

    return [
        web.get("/ops/users/{user_id}", user_state),
        web.get("/recommend/{user_id}", recommend),
        web.get("/recommend/", recommend),
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", metrics_view),
    ]


def _check_token(request: web.Request, token: str) -> web.Response | None:
    if not token:
        return web.json_response({"error": "operator endpoints are disabled: "
                                           "set RECSTREAM_OPERATOR_TOKEN"}, status=403)
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return web.json_response({"error": "missing or wrong bearer token"}, status=401)
    return None


def register(app, *, settings: Settings, metrics: Metrics, recommender: Recommender,
             readiness: Readiness, user_store: UserStore, users: UserIndex,
             router: OwnerRouter, publisher: ProvenancePublisher,
             guard: Guard | None = None,
             arms: ArmRanker | None = None,
             arm_metrics: ExperimentMetrics | None = None,
             sent_answers: SentAnswers | None = None) -> None:
    """Mount the routes, the answer log's drain and the dashboard on the worker."""
    register_provenance(app, publisher, readiness.users_loaded)
    app.web.web_app.add_routes(make_routes(
        settings=settings, metrics=metrics, recommender=recommender, readiness=readiness,
        user_store=user_store, users=users, router=router, publisher=publisher, guard=guard,
        arms=arms, arm_metrics=arm_metrics, sent_answers=sent_answers))
    dashboard.register(app, metrics.registry)  # /dashboard and its sampler (web/dashboard.py)

    @app.on_before_shutdown.connect
    async def close_router(app_=None, **kwargs) -> None:
        await router.close()
