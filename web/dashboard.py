"""The built-in dashboard: ``/dashboard`` (one HTML page) and ``/dashboard/series.json``.

A :class:`~web.dashboard_sampler.Sampler` reads this worker's own Prometheus registry every
few seconds into a bounded ring buffer (``web/dashboard_sampler.py``); the page polls the
JSON and draws one SVG panel per entry of :data:`PANELS`.  No Prometheus or Grafana is
needed to see a worker's health, and none of this touches the request path.

The sampler runs as a Faust timer (``app.timer``), like the other periodic work of a worker:
Faust starts it once the worker is up, runs it on the worker's event loop (the one that
serves, so reads of the registry need no lock beyond prometheus_client's own) and stops it
before the web server and the consumer go down, with no task handling of our own.
"""
from __future__ import annotations

import importlib.resources
from typing import Any

import orjson
from aiohttp import web

from web.dashboard_sampler import SAMPLE_EVERY_S, Panel, Sampler, Source

__all__ = ["PANELS", "Panel", "Sampler", "Source", "make_routes", "page_html", "register"]

PANELS: tuple[Panel, ...] = (
    Panel("availability", "Availability (platform outcome lines)", "ratio", (
        Source("gauge", "recstream_availability", "availability"),
        Source("share", "recstream_platform_requests", "ok share per sample",
               match=(("result", "ok"),)))),
    Panel("latency", "Latency", "seconds", (
        Source("quantile", "recstream_request_seconds", "worker p50", q=0.5),
        Source("quantile", "recstream_request_seconds", "worker p99", q=0.99),
        Source("quantile", "recstream_platform_latency_seconds", "platform p50", q=0.5),
        Source("quantile", "recstream_platform_latency_seconds", "platform p99", q=0.99))),
    Panel("requests", "/recommend answers by source", "per_second", (
        Source("rate", "recstream_requests"),)),
    Panel("personal", "Personal answers to returning users (issue #10)", "ratio", (
        Source("share", "recstream_answers_by_user", "personal share, returning users",
               match=(("source", "personal"),), within=(("user", "returning"),)),
        Source("share", "recstream_answers_by_user", "personal share, all users",
               match=(("source", "personal"),)))),
    Panel("quality", "Online quality", "ratio", (
        Source("gauge", "recstream_online_conversion", "conversion"),
        Source("gauge", "recstream_online_watch_through", "watch-through"),
        Source("gauge", "recstream_online_rating_mean", "mean rating", axis="right")),
        right_unit="stars"),
    Panel("cost", "Licence cost", "currency_per_view", (
        Source("gauge", "recstream_licence_cost_per_view", "per view"),
        Source("gauge", "recstream_licence_cost_per_hour", "per hour", axis="right")),
        right_unit="currency_per_hour"),
    Panel("drift", "Drift (PSI, recent vs reference window)", "psi", (
        Source("gauge", "recstream_drift_psi"),), refs=((0.1, "moderate"), (0.25, "major"))),
    Panel("lag", "Consumer lag", "messages", (
        Source("gauge", "recstream_consumer_lag"),)),
    Panel("experiments", "Experiments: answers and views per arm", "per_second", (
        Source("rate", "recstream_experiment_answers"),
        Source("rate", "recstream_experiment_views", axis="right")), right_unit="per_second"),
    Panel("model", "Serving model", "count", (
        Source("gauge", "recstream_model_generation", "generation"),
        Source("gauge", "recstream_model_age_seconds", "age", axis="right"),
        Source("info", "recstream_model_info", "version", label="version")),
        right_unit="seconds"),
)

def page_html() -> bytes:
    return importlib.resources.files("web").joinpath("dashboard.html").read_bytes()


def make_routes(sampler: Sampler) -> list[web.RouteDef]:
    page: list[bytes] = []  # read on first request: nothing is read at import

    async def dashboard(request: web.Request) -> web.Response:
        if not page:
            page.append(page_html())
        return web.Response(body=page[0], content_type="text/html", charset="utf-8")

    async def series(request: web.Request) -> web.Response:
        since = None
        raw = request.query.get("since", "")
        if raw:
            try:
                since = float(raw)
            except ValueError:
                return web.json_response({"error": "since must be a number"}, status=400)
        return web.Response(body=orjson.dumps(sampler.snapshot(since)),
                            content_type="application/json")

    return [web.get("/dashboard", dashboard), web.get("/dashboard/series.json", series)]


def register(app: Any, registry: Any, *, every_s: float = SAMPLE_EVERY_S) -> Sampler:
    """Mount the dashboard on the worker's aiohttp app and sample ``registry`` with a timer."""
    sampler = Sampler(registry, PANELS, every_s=every_s)
    app.web.web_app.add_routes(make_routes(sampler))

    @app.timer(every_s, name="dashboard_sample")
    async def sample_metrics() -> None:
        sampler.sample()

    return sampler
