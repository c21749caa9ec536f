"""Thin agents, timers and tasks; each module registers its own on the app.

:func:`recstream.app.wire_agents` (the composition root) builds and registers them, passing
each only the collaborators it uses.

| module            | concern                                                        |
|-------------------|----------------------------------------------------------------|
| ingest            | movielog lines → parsed events in their user's partition       |
| user_writer       | the one writer of user_history / user_vectors (online MF)      |
| user_events       | the five event kinds the user writer applies (mixed into it)   |
| profiles          | cold start: user API → UserProfile records on their own topic  |
| movies            | the one writer of movie state; item updates broadcast          |
| metadata          | movie API metadata for movies being played                     |
| item_follower     | every worker follows the item broadcast (the item index)       |
| model_follower    | swaps in promoted models announced on model-updates; retrains  |
| model_swap        | installs a model (swap) and refits the users it left behind   |
| experiment_follower | every worker follows <app>-experiments into its ExperimentBook |
| refresher         | keeps answers fresh as users' state changes                    |
| monitoring        | availability, quality, cost and drift from the stream          |
| lifecycle         | topics, recovery, rebalances, clean shutdown                   |
| attack_watch      | live sybil-wave and scraping detectors (#14), suspects topic   |
| fairness_watch    | live fairness monitor: conversion and pick ratings by group    |
"""
from __future__ import annotations
