"""Streaming detectors for rating poisoning (sybil waves) and scraping / model extraction.

Both keep bounded state and do O(1) amortised work per event, so they can run
inside an agent on every line; both return decisions a test can score against
the simulator's ground truth (bench/detectors.py).

**Sybil waves.**  A poisoning wave is many *young* accounts giving one movie
the same extreme rating within a short window, each with little else to show:
the simulator's wave is 50 accounts created 2 s apart, each watching one
minute of the target and rating it top marks.  An honest new user who rates a
movie has usually watched it.  So a young account's rating is *shallow* when
it watched at most ``shallow_minutes`` of the movie first; a movie is
*pushed* when ``min_accounts`` distinct young accounts rated it with the same
value inside ``window_s`` *and* each of them rated shallowly **or** was created
in a burst with the others (``min_accounts`` creations among the cluster
within ``burst_s``); those accounts are suspected.  A hit that many new users
watch and rate the same is not a wave: they watched it, and they arrived apart.  Accounts older than ``young_s`` are never
tracked, which bounds memory by the sign-up rate.

**Scraping.**  The graders' client is the one whose requests come back as
outcome lines in the movielog (the platform logs every call it makes; nobody
else can write there).  A client walking user ids asks for many distinct
users, and either its calls are never echoed (``unconfirmed``) or its ids move
in small monotone steps (``sequential``), or — seen at the web layer alone,
with no wait for the movielog — it comes from an address outside the graders'
known ones (an *outsider*: the caller says so) and still asks for
``min_requests`` distinct users (``walking``): one person's client asks for
itself, not for a hundred users.  That rule needs the graders' addresses
configured; without them every caller is judged by the echo rules only.  Decisions are per client over its
last ``window`` requests and its last ``window`` verdicts (a verdict waits until
the movielog has been read ``confirm_s`` past the request, so under consumer lag
it can come after the request left the first window).
"""
from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Young:
    created: float
    watched: dict = field(default_factory=dict)   # movie -> minutes seen


class SybilDetector:
    """Feed :meth:`account`, :meth:`watch` and :meth:`rate` in (roughly) time order."""

    def __init__(self, *, young_s: float = 86_400.0, window_s: float = 3_600.0,
                 min_accounts: int = 10, shallow_minutes: int = 2, burst_s: float = 600.0,
                 max_young: int = 1_000_000) -> None:
        self.young_s, self.window_s, self.min_accounts = young_s, window_s, min_accounts
        self.shallow_minutes, self.burst_s, self.max_young = shallow_minutes, burst_s, max_young
        self.young: OrderedDict[int, _Young] = OrderedDict()       # by creation time
        self.ratings: dict[tuple[str, int], tuple[deque, Counter]] = {}  # (movie, value) -> window
        self.suspected_accounts: dict[int, float] = {}            # user -> time flagged
        self.pushed_movies: dict[str, float] = {}                 # movie -> time flagged

    def account(self, t: float, user: int) -> None:
        if user not in self.young:
            self.young[user] = _Young(created=t)
            if len(self.young) > self.max_young:
                self.young.popitem(last=False)
        self._expire(t)

    def watch(self, t: float, user: int, movie: str, minute: int) -> None:
        acct = self.young.get(user)
        if acct is not None:
            acct.watched[movie] = max(acct.watched.get(movie, 0), minute + 1)

    def rate(self, t: float, user: int, movie: str, value: int) -> list[int]:
        """Record a rating; returns the accounts newly suspected because of it."""
        acct = self.young.get(user)
        if acct is None or t - acct.created > self.young_s:
            return []
        shallow = acct.watched.get(movie, 0) <= self.shallow_minutes
        key = (movie, int(value))
        window = self.ratings.get(key)
        if window is None:
            window = self.ratings[key] = (deque(), Counter())
        recent, raters = window
        recent.append((t, user, shallow))
        raters[user] += 1
        while recent and t - recent[0][0] > self.window_s:
            old = recent.popleft()[1]
            raters[old] -= 1
            if not raters[old]:
                del raters[old]
        if len(raters) < self.min_accounts:
            return []
        return self._flag(t, movie, recent, raters)

    def _flag(self, t: float, movie: str, recent: deque, raters: Counter) -> list[int]:
        """Suspect the cluster's shallow raters and its accounts created in one burst, once
        there are ``min_accounts`` of them (a hit that new users watch and rate is no wave)."""
        created = sorted((self.young[u].created, u) for u in raters if u in self.young)
        bursty: set[int] = set()
        lo = 0
        for hi in range(len(created)):               # sliding window over creation times
            while created[hi][0] - created[lo][0] > self.burst_s:
                lo += 1
            if hi - lo + 1 >= self.min_accounts:
                bursty.update(u for _, u in created[lo:hi + 1])
        suspects = {user for _, user, shallow in recent if shallow or user in bursty}
        if len(suspects) < self.min_accounts:
            return []
        self.pushed_movies.setdefault(movie, t)
        new = sorted(suspects - self.suspected_accounts.keys())
        for user in new:
            self.suspected_accounts[user] = t
        return new

    def _expire(self, t: float) -> None:
        while self.young:
            user, acct = next(iter(self.young.items()))
            if t - acct.created <= self.young_s:
                break
            self.young.popitem(last=False)
        if len(self.ratings) > 4 * max(len(self.young), 1024):   # drop emptied windows now and then
            self.ratings = {k: w for k, w in self.ratings.items() if w[0] and t - w[0][-1][0] <= self.window_s}


@dataclass(slots=True)
class _Client:
    recent: deque = field(default_factory=deque)      # [t, user, confirmed, small step, live]
    users: Counter = field(default_factory=Counter)   # distinct users in `recent`
    judged: deque = field(default_factory=deque)      # confirmed? of its last judged requests
    unconfirmed: int = 0                               # ... how many of those were not
    steps: int = 0                                     # small monotone id steps in `recent`
    requests: int = 0
    last_user: int = -1
    outsider: bool = False                             # not from a graders' address

    @property
    def resolved(self) -> int:
        return len(self.judged)


class ScrapingDetector:
    """Feed :meth:`request` for every ``/recommend`` call and :meth:`outcome` for every outcome line."""

    def __init__(self, *, window: int = 1000, min_requests: int = 100, distinct_share: float = 0.8,
                 unconfirmed_share: float = 0.8, sequential_share: float = 0.8, max_step: int = 10,
                 confirm_s: float = 5.0, skew_s: float = 1.0, max_clients: int = 100_000) -> None:
        self.window, self.min_requests = window, min_requests
        self.distinct_share, self.unconfirmed_share = distinct_share, unconfirmed_share
        self.sequential_share, self.max_step, self.confirm_s = sequential_share, max_step, confirm_s
        self.skew_s, self.max_clients = skew_s, max_clients
        self.clients: OrderedDict[str, _Client] = OrderedDict()   # least recently seen first
        self.pending: deque = deque()                             # (t, client, entry) to resolve
        self.outcomes: dict[int, float] = {}                      # user -> newest outcome time
        self.outcome_log: deque = deque()                         # (t, user), for expiry
        self.flagged: dict[str, tuple[float, int, str]] = {}      # client -> (t, requests, why)
        self.now = float("-inf")        # newest request time
        self.watermark = float("-inf")  # newest outcome time: how far the movielog has been read

    def outcome(self, t: float, user: int) -> None:
        self.outcomes[user] = max(t, self.outcomes.get(user, t))
        self.outcome_log.append((t, user))
        self.watermark = max(self.watermark, t)
        self._resolve()

    def request(self, t: float, client: str, user: int, outsider: bool = False) -> bool:
        """Record one call; returns whether ``client`` is (now or already) flagged.

        ``outsider``: the call came from an address known not to be the graders'
        (the caller knows the graders' addresses); such a client is judged on its
        requests alone (``walking``), without waiting for the movielog's echo."""
        self.now = max(self.now, t)
        c = self.clients.get(client)
        if c is None:
            c = self.clients[client] = _Client()
            if len(self.clients) > self.max_clients:
                _, evicted = self.clients.popitem(last=False)
                for entry in evicted.recent:
                    entry[4] = False
        self.clients.move_to_end(client)
        c.requests += 1
        c.outsider |= outsider
        entry = [t, user, None, 0 < user - c.last_user <= self.max_step, True]  # t, user, confirmed, step, live
        c.last_user = user
        c.recent.append(entry)
        c.users[user] += 1
        c.steps += entry[3]
        self.pending.append((t, client, entry))
        if len(c.recent) > self.window:
            self._forget(c, c.recent.popleft())
        return self._decide(client, c)

    def _decide(self, client: str, c: _Client) -> bool:
        if client in self.flagged:
            return True
        n = len(c.recent)
        if c.requests < self.min_requests or len(c.users) < self.distinct_share * n:
            return False
        why = ""
        if c.steps >= self.sequential_share * n:
            why = "sequential"
        elif c.outsider:
            why = "walking"
        elif c.resolved >= self.min_requests and c.unconfirmed >= self.unconfirmed_share * c.resolved:
            why = "unconfirmed"
        if why:
            self.flagged[client] = (self.now, c.requests, why)
        return bool(why)

    def _resolve(self) -> None:
        """A request is confirmed iff an outcome line for its user came within ``confirm_s``.

        It is judged only once the movielog has been read ``confirm_s`` past it
        (the watermark, in the stream's time): consumer lag delays decisions
        but never turns the graders' calls into unconfirmed ones.
        """
        touched: dict[str, _Client] = {}
        while self.pending and self.watermark - self.pending[0][0] > self.confirm_s + self.skew_s:
            t, client, entry = self.pending.popleft()
            if not entry[4]:
                continue
            entry[2] = confirmed = self.outcomes.get(entry[1], float("-inf")) >= t - self.skew_s
            c = self.clients.get(client)
            if c is not None:
                c.judged.append(confirmed)
                c.unconfirmed += not confirmed
                if len(c.judged) > self.window:
                    c.unconfirmed -= not c.judged.popleft()
                touched[client] = c
        for client, c in touched.items():  # a verdict can come after the client's last call
            self._decide(client, c)
        horizon = self.watermark - 3 * (self.confirm_s + self.skew_s)
        while self.outcome_log and self.outcome_log[0][0] < horizon:
            t, user = self.outcome_log.popleft()
            if self.outcomes.get(user) == t:
                del self.outcomes[user]

    def _forget(self, c: _Client, entry: list) -> None:
        """``entry`` leaves the distinct-users window; it is still judged when its time comes
        (consumer lag can exceed the window: the verdicts keep their own last ``window``)."""
        c.users[entry[1]] -= 1
        if not c.users[entry[1]]:
            del c.users[entry[1]]
        c.steps -= entry[3]
