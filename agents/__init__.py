"""Thin agents, timers and tasks; each module registers its own on the app.

| module            | concern                                                        |
|-------------------|----------------------------------------------------------------|
| ingest            | movielog lines → parsed events in their user's partition       |
| users             | the one writer of user_history / user_vectors (online MF)      |
| profiles          | cold start: user API → UserProfile records on their own topic  |
| movies            | the one writer of movie state; item updates broadcast          |
| metadata          | movie API metadata for movies being played                     |
| broadcast         | every worker follows the item broadcast (the item index)       |
| model_follower    | swaps in promoted models announced on model-updates; retrains  |
| refresher         | keeps answers fresh as users' state changes                    |
| monitoring        | availability, quality, cost and drift from the stream          |
| lifecycle         | topics, recovery, rebalances, clean shutdown                   |
"""
from __future__ import annotations

import faust

from agents import (broadcast, ingest, lifecycle, metadata, model_follower, monitoring, movies,
                    profiles, refresher, users)
from recstream.runtime import Runtime


def register_all(app: faust.App, rt: Runtime) -> None:
    fetcher = metadata.register(app, rt)
    user_writer = users.UserWriter(rt)
    ingest.register(app, rt, user_writer)
    profiles.register(app, rt, user_writer)  # new users: user API → UserProfile records
    movie_writer = movies.register(app, rt, on_play=fetcher.want)
    item_follower = broadcast.register(app, rt)
    model_follower.register(app, rt, on_swap=item_follower.apply_ahead)
    refresher.register(app, rt)
    monitoring.register(app, rt)

    def forget_caches() -> None:
        rt.user_store.forget_cache()
        movie_writer.forget()

    lifecycle.register(app, rt, forget_caches)
