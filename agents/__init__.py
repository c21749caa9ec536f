"""Thin agents, timers and tasks; each module registers its own on the app."""
from __future__ import annotations

import faust

from recstream.runtime import Runtime


def register_all(app: faust.App, rt: Runtime) -> None:
    from agents import broadcast, catalog, ingest, lifecycle, movies, refresher, users

    fetcher = catalog.register(app, rt)
    user_writer = users.UserWriter(rt)
    ingest.register(app, rt, user_writer)
    from agents import coldstart
    coldstart.register(app, rt, user_writer)  # new users: user API → UserProfile events
    movie_writer = movies.register(app, rt, on_play=fetcher.want)
    item_follower = broadcast.register(app, rt)
    from agents import models
    models.register(app, rt, on_swap=item_follower.apply_ahead)
    refresher.register(app, rt)
    from agents import monitoring
    monitoring.register(app, rt)

    def forget_caches() -> None:
        rt.user_store.forget_cache()
        movie_writer.forget()

    lifecycle.register(app, rt, forget_caches)
