"""bench/serve.py's server roles: the state server (a filled WorkerParts) and the constant one."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import tempfile
import time

import numpy as np

from serve_proc import BACKGROUND

WORDS = ("the lost city night star river dark love war king last man black house blue girl "
         "dead road time heart fire moon iron ghost secret summer winter game dream wild "
         "silent golden empire shadow storm angel sun island street bridge hunter").split()



# -- servers (subprocess roles) ----------------------------------------------------------
def build_state(args) -> tuple[object, dict]:
    """A real, never-started WorkerParts filled with random users and movies."""
    from recstream.app import create_app, parts_of
    from recstream.settings import Settings
    from tables.codecs import UserHistory

    tmp = tempfile.mkdtemp(prefix="bench-serve-")
    import atexit
    import shutil
    atexit.register(shutil.rmtree, tmp, True)
    settings = Settings.from_mapping({"app_id": f"bench-serve-{os.getpid()}", "data_dir": tmp,
                                      "max_user_id": args.max_user_id})
    rt = parts_of(create_app(settings))
    rng = np.random.default_rng(args.seed)
    f, m, n = settings.n_factors, args.movies, args.users
    now = time.time()
    t_fill = time.perf_counter()
    items = rt.items
    seen: set[str] = set()
    for i in range(m):
        slug = "+".join(rng.choice(WORDS, 1 + i % 3)) + f"+{1920 + i % 104}"
        if slug in seen:
            slug += f"+{i}"
        seen.add(slug)
        items.row(slug)
        if i % 100 == 0:
            items.set_flags(slug, adult=True, minors_ok=False)  # 1% adult
        elif i % 7 == 0:
            items.set_flags(slug, adult=False, minors_ok=False)  # ~14% R / NC-17
        else:  # confirmed by the movie API, fine for minors (unconfirmed is unsafe: #14)
            items.set_flags(slug, adult=False, minors_ok=True)
    items.factors[:m] = rng.normal(0, 0.1, (m, f)).astype(np.float32)
    items.bias[:m] = rng.normal(0, 0.3, m).astype(np.float32)
    items.pop_score[:m] = rng.permutation(1000.0 / np.arange(1, m + 1) ** 0.8)
    items.pop_time[:m] = now - rng.uniform(0, 3 * 86400, m)
    items.plays[:m] = rng.integers(0, 5000, m)
    rt.recommender.observe_time(now)

    user_ids = rng.permutation(np.arange(1, args.max_user_id + 1))[:n].astype(np.int64)
    vectors = rng.normal(0, 0.1, (n, f)).astype(np.float32)
    biases = rng.normal(0, 0.2, n).astype(np.float32)
    users = rt.users
    for i, u in enumerate(user_ids.tolist()):
        if i % 10 == 9:
            users.row(u)  # known (rated/watched) but no vector yet: "popular" answers
        else:
            users.set_vector(u, float(biases[i]), vectors[i])
    users.minor[:n] = rng.random(n) < 0.05
    ids = items.ids

    def history_of(user: int):
        if user % 3:
            return None
        h = UserHistory(created=now - 86400)
        for j in range(3 + user % 12):
            h.watches[ids[(user * 7919 + j * 104729) % m]] = [60, now, now, 60]
        return h

    rt.recommender.history_of = history_of
    rt.recommender.refresh_fallback()
    rt.readiness.items_loaded.set()  # the view answers 503 until the item model is loaded
    fill_s = time.perf_counter() - t_fill

    # A full refresh, as after a model swap: refresher-sized batches, like refresh_once.
    rec, batch = rt.recommender, settings.refresh_batch
    excl_s = rank_s = 0.0
    for start in range(0, n, batch):
        rows = np.arange(start, min(n, start + batch))
        t0 = time.perf_counter()
        exclusions = rec.exclusions(rows)
        t1 = time.perf_counter()
        users.store_answers(rows, rec.compute(rows, exclusions))
        excl_s += t1 - t0
        rank_s += time.perf_counter() - t1
    users.dirty.clear()
    np.save(args.ids_out, user_ids)
    return rt, {"fill_s": round(fill_s, 2), "precompute_s": round(excl_s + rank_s, 2),
                "precompute_exclusions_s": round(excl_s, 2),
                "precompute_rank_s": round(rank_s, 2), "batch": batch}


def gc_pauses() -> dict:
    """Record every garbage collection's pause; read back at ``/bench/gc``."""
    import gc
    stats = {g: [0, 0.0, 0.0] for g in range(3)}  # count, total ms, max ms
    started = [0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            ms = (time.perf_counter() - started[0]) * 1000
            s = stats[info["generation"]]
            s[0] += 1
            s[1] += ms
            s[2] = max(s[2], ms)

    gc.callbacks.append(callback)
    return stats


def serve(routes, info: dict, setup=None) -> None:
    from aiohttp import web

    async def main() -> None:
        stats = gc_pauses()

        async def gc_view(request: web.Request) -> web.Response:
            return web.json_response({f"gen{g}": {"count": c, "total_ms": round(t, 1),
                                                  "max_ms": round(m, 2)}
                                      for g, (c, t, m) in stats.items()})

        app = web.Application()
        app.add_routes(list(routes) + [web.get("/bench/gc", gc_view)])
        runner = web.AppRunner(app, access_log=None)  # as Faust's aiohttp driver
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        if setup is not None:
            setup()
        print("READY " + json.dumps({**info, "port": sock.getsockname()[1]}), flush=True)
        stopped = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
        await stopped.wait()
        await runner.cleanup()

    asyncio.run(main())


def run_state_server(args) -> None:
    from web.views import make_routes

    rt, info = build_state(args)

    def churn() -> None:  # users changing state at --stale-rate, refreshed like the worker
        if args.stale_rate <= 0:
            return
        from agents.refresher import AnswerRefresher
        refresher = AnswerRefresher(users=rt.users, items=rt.items, recommender=rt.recommender,
                                    batch=rt.settings.refresh_batch, top_k=rt.settings.top_k,
                                    refreshed=rt.metrics.refreshed)
        rng = np.random.default_rng(args.seed + 1)

        async def invalidate() -> None:
            while True:
                await asyncio.sleep(0.01)
                for r in rng.integers(0, len(rt.users), max(1, int(args.stale_rate / 100))):
                    rt.users.invalidate(int(r))

        async def refresh() -> None:
            while True:
                if not await refresher.once():
                    await asyncio.sleep(rt.settings.refresh_interval_s)
        loop = asyncio.get_running_loop()
        BACKGROUND.extend([loop.create_task(invalidate()), loop.create_task(refresh())])

    serve(make_routes(settings=rt.settings, metrics=rt.metrics, recommender=rt.recommender,
                      readiness=rt.readiness, user_store=rt.user_store, users=rt.users),
          info, churn)


def run_const_server(args) -> None:
    from aiohttp import web
    line = ",".join(f"some+movie+title+{1990 + i}" for i in range(20))

    async def constant(request: web.Request) -> web.Response:
        return web.Response(text=line, content_type="text/plain")

    serve([web.get("/recommend/{user_id}", constant), web.get("/recommend/", constant)], {})


