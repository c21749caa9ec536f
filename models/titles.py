"""Match the free-text movie mentions of a self-description against the catalogue.

New users write things like "I love The Matrix, Toy Story and amelie (2001); not a
fan of horror": titles in any case, with or without the year, with typos, cut
short, or naming films we do not carry.  Cold start only needs a handful of
confident (movie, score) pairs, so the index trades recall for precision: an exact
normalised title scores ~1, a word prefix less, a typo within a bounded edit
distance less again, and anything further is dropped rather than guessed.

Lookups go exact key -> key without a leading article -> word prefix -> fuzzy.
Fuzzy candidates come from a character-trigram inverted index (one numpy
``bincount`` over the posting lists), then at most a few are verified with a
banded Damerau (OSA) edit distance, so one lookup costs tens of microseconds.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Iterable, Sequence

import numpy as np

ARTICLES = ("the", "a", "an")
MAX_TEXT = 4000       # longer self-descriptions are cut: bounded work per user
MAX_SPAN = 4          # pieces a title may span when its own "," / "and" split it
FUZZY_CANDIDATES = 4  # trigram candidates verified by edit distance

_TRAILING_ARTICLE = re.compile(r"^(.*?),\s*(the|a|an)\s*((?:[(\[]\s*\d{4}\s*[)\]])?)\s*$", re.I)
_PAREN_YEAR = re.compile(r"\s*[(\[]\s*((?:18|19|20)\d\d)\s*[)\]]\s*$")
_BARE_YEAR = re.compile(r"\s+((?:18|19|20)\d\d)\s*$")
_SEP = re.compile(r"\s*(?:[;,/|\n\r\t]|\.(?:\s+|$)|[!?]+|&|\b(?:and|or|but|also)\b)\s*", re.I)
_LEAD = re.compile(
    r"^(?:(?:i|we)\s+)?(?:(?:really|just|absolutely|also|totally|truly)\s+)*"
    r"(?:(?:(?:did|do|does)\s*(?:not|n'?t)|didnt|dont|never|cannot|can'?t)\s+)?"
    r"(?:stand\s+|enjoy(?:ed|s)?|love[ds]?|like[ds]?|hate[ds]?|adore[ds]?|dislike[ds]?|"
    r"not\s+a\s+fan\s+of|a\s+fan\s+of|fan\s+of|anything\s+like|movies\s+like|films\s+like|"
    r"such\s+as|not|my\s+favou?rites?\s*(?:are|is|include)?:?|favou?rites?:?)\s+", re.I)
_TRAIL = re.compile(
    r"\s+(?:(?:are|is|were|was)\s+(?:(?:my|all|the|so|really|very|pretty)\s+)*"
    r"(?:all[- ]time\s+)?(?:favou?rites?|boring|great|awful|terrible|best|amazing|overrated|"
    r"bad|good|fun|dull))\s*[.!]*$", re.I)


def normalise_title(text: str) -> str:
    """Lower case, accents and apostrophes dropped, '&' -> 'and', ", The" moved to the front."""
    m = _TRAILING_ARTICLE.match(text)
    if m:
        text = f"{m.group(2)} {m.group(1)} {m.group(3)}"
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = text.replace("&", " and ")
    text = re.sub(r"['\u2019`\u00b4]", "", text)
    text = re.sub(r"[\W_]+", " ", text)
    return " ".join(text.split())


def strip_article(key: str) -> str:
    head, _, rest = key.partition(" ")
    return rest if head in ARTICLES and rest else key


def split_year(text: str) -> list[tuple[str, int | None]]:
    """(title, year) readings of a mention: "(2001)" is a year; a bare trailing year may be."""
    m = _PAREN_YEAR.search(text)
    if m and m.start() > 0:
        return [(text[: m.start()], int(m.group(1)))]
    m = _BARE_YEAR.search(text)
    if m and m.start() > 0:
        return [(text, None), (text[: m.start()], int(m.group(1)))]
    return [(text, None)]


def trigrams(key: str) -> set[str]:
    padded = f"  {key} "
    return {padded[i:i + 3] for i in range(len(padded) - 2)}


def edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (adjacent swaps cost 1), or ``limit + 1`` if above."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    start = 0                      # a typo leaves most of a title intact: trim shared ends
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    a, b = a[start:len(a) - end], b[start:len(b) - end]
    big = limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [big] * (len(b) + 1)
        cur[0] = i
        lo, hi = max(1, i - limit), min(len(b), i + limit)
        for j in range(lo, hi + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if cost and i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                v = min(v, prev2[j - 2] + 1)
            cur[j] = v
        if min(cur[lo - 1:hi + 1]) > limit:
            return big
        prev2, prev = prev, cur
    return min(prev[len(b)], big)


def allowed_edits(key: str) -> int:
    """Typos tolerated for a key of this length: none for short titles ("Up" is not "Us")."""
    n = len(key)
    return 0 if n < 5 else 1 if n < 9 else 2 if n < 18 else 3


def split_mentions(text: str) -> list[str]:
    """Title candidates in free text: split at , ; . ! & "and" ..., filler words removed."""
    if not isinstance(text, str):
        return []
    out = []
    for piece in _SEP.split(text[:MAX_TEXT]):
        piece = strip_fillers(piece)
        if normalise_title(piece):
            out.append(piece)
    return out


def strip_fillers(text: str) -> str:
    text = text.strip(" \t\n\r.!?:;\"'")
    for _ in range(3):
        stripped = _TRAIL.sub("", _LEAD.sub("", text)).strip(" \t\n\r.!?:;\"'")
        if stripped == text:
            break
        text = stripped
    return text


class TitleIndex:
    """Catalogue titles, normalised and indexed for tolerant lookup.

    ``popularity`` (optional, one number per movie) only breaks ties between
    movies sharing a title, e.g. the remake versus the original when no year
    is given.  ``min_score`` is the confidence below which ``match`` drops a
    mention.
    """

    def __init__(self, entries: Iterable[tuple[str, str, int | None]], *,
                 popularity: Sequence[float] | None = None, min_score: float = 0.6) -> None:
        self.min_score = min_score
        self.ids: list[str] = []
        self.keys: list[str] = []
        self.bare: list[str] = []
        years: list[int] = []
        self._exact: dict[str, list[int]] = {}
        self._bare: dict[str, list[int]] = {}
        self._prefix: dict[str, list[int]] = {}
        postings: dict[str, list[int]] = {}
        for movie_id, title, year in entries:
            key = normalise_title(title) if isinstance(title, str) else ""
            if not key:
                continue
            i = len(self.ids)
            bare = strip_article(key)
            self.ids.append(str(movie_id))
            self.keys.append(key)
            self.bare.append(bare)
            years.append(int(year) if year else 0)
            self._exact.setdefault(key, []).append(i)
            self._bare.setdefault(bare, []).append(i)
            words = bare.split()
            for w in range(2, len(words)):
                self._prefix.setdefault(" ".join(words[:w]), []).append(i)
            for g in trigrams(bare):
                postings.setdefault(g, []).append(i)
        self.years = np.asarray(years, dtype=np.int32)
        self._n_grams = np.asarray([len(trigrams(b)) for b in self.bare], dtype=np.float64)
        self._postings = {g: np.asarray(v, dtype=np.int32) for g, v in postings.items()}
        pop = np.zeros(len(self.ids)) if popularity is None else np.asarray(popularity, float)
        self._popularity = np.nan_to_num(pop[: len(self.ids)]) if pop.size >= len(self.ids) \
            else np.zeros(len(self.ids))

    def __len__(self) -> int:
        return len(self.ids)

    # -- one title ---------------------------------------------------------------
    def lookup(self, mention: str) -> tuple[str, float] | None:
        """Best ``(movie_id, confidence)`` for one title mention, or ``None``."""
        best: tuple[int, float] | None = None
        for title, year in split_year(mention[:200]):
            found = self._lookup_key(normalise_title(title), year)
            if found and (best is None or found[1] > best[1]):
                best = found
        return None if best is None else (self.ids[best[0]], best[1])

    def _lookup_key(self, key: str, year: int | None) -> tuple[int, float] | None:
        if not key:
            return None
        bare = strip_article(key)
        for table, k, score in ((self._exact, key, 1.0), (self._bare, bare, 0.95)):
            if k in table:
                return self._pick(table[k], year, score)
        if len(bare.split()) >= 2 and bare in self._prefix:
            rows = self._prefix[bare]
            i, s = self._pick(rows, year, 0.85)
            share = len(bare) / max(len(self.bare[i]), 1)   # how much of the title was named
            return i, s * min(1.0, 0.7 + 0.3 * share) / (1.0 + 0.15 * (len(rows) - 1))
        return self._fuzzy(bare, year)

    def _pick(self, rows: list[int], year: int | None, score: float) -> tuple[int, float]:
        """Among movies sharing a key: the year's one, else the most popular (earliest on ties)."""
        if year:
            same = [r for r in rows if self.years[r] == year]
            if same:
                rows = same
            elif any(self.years[r] for r in rows):
                score *= 0.9 if any(abs(int(self.years[r]) - year) <= 1 for r in rows) else 0.8
        best = max(rows, key=lambda r: (self._popularity[r], -r))
        return best, score * (1.0 if len(rows) == 1 or year else 0.97)

    def _fuzzy(self, bare: str, year: int | None) -> tuple[int, float] | None:
        limit = allowed_edits(bare)
        if limit == 0 or not self.ids:
            return None
        grams = [self._postings[g] for g in trigrams(bare) if g in self._postings]
        if not grams:
            return None
        counts = np.bincount(np.concatenate(grams), minlength=len(self.ids))
        n_q = len(trigrams(bare))
        # q-gram lemma: each edit destroys at most 3 trigrams, so fewer shared ones cannot pass.
        rows = np.flatnonzero(counts >= max(1, n_q - 3 * limit))
        if rows.size == 0:
            return None
        dice = 2.0 * counts[rows] / (n_q + self._n_grams[rows])
        k = min(FUZZY_CANDIDATES, rows.size)
        top = np.argpartition(-dice, k - 1)[:k]
        best: tuple[int, float] | None = None
        for t in sorted(top.tolist(), key=lambda t: (-dice[t], rows[t])):
            r = int(rows[t])
            target = self.bare[r]
            d = edit_distance(bare, target, min(limit, allowed_edits(target)))
            if d > min(limit, allowed_edits(target)):
                continue
            score = 0.9 * (1.0 - d / max(len(bare), len(target))) - 0.05 * d
            if year and self.years[r] and self.years[r] != year:
                score *= 0.8
            if best is None or score > best[1] or (score == best[1] and
                                                   self._popularity[r] > self._popularity[best[0]]):
                best = (r, score)
        return best

    # -- free text ---------------------------------------------------------------
    def match(self, text: object, *, min_score: float | None = None) -> list[tuple[str, float]]:
        """Movies named in ``text`` as ``(movie_id, confidence)``, in order of mention.

        The text is split at separators, then adjacent pieces are re-joined where
        that matches better (titles contain "," "&" "and" "..."): a small dynamic
        programme maximises sum(confidence x characters covered).  Never raises.
        """
        if not isinstance(text, str) or not self.ids:
            return []
        threshold = self.min_score if min_score is None else min_score
        text = text[:MAX_TEXT]
        cuts = [0] + [x for m in _SEP.finditer(text) for x in m.span()] + [len(text)]
        pieces = [(s, e) for s, e in zip(cuts[::2], cuts[1::2]) if normalise_title(text[s:e])]
        n = len(pieces)
        best = [0.0] * (n + 1)
        choice: list[tuple[int, tuple[str, float] | None]] = [(0, None)] * (n + 1)
        cache: dict[str, tuple[str, float] | None] = {}
        for j in range(1, n + 1):
            best[j], choice[j] = best[j - 1], (j - 1, None)
            for i in range(max(0, j - MAX_SPAN), j):
                span = text[pieces[i][0]:pieces[j - 1][1]]
                found = self._span(span, cache)
                if found is None or found[1] < threshold:
                    continue
                value = best[i] + found[1] * len(normalise_title(span))
                if value > best[j]:
                    best[j], choice[j] = value, (i, found)
        out: list[tuple[str, float]] = []
        j = n
        while j > 0:
            i, found = choice[j]
            if found is not None:
                out.append(found)
            j = i
        seen: dict[str, float] = {}
        for movie_id, score in reversed(out):
            seen[movie_id] = max(score, seen.get(movie_id, 0.0))
        return [(m, round(s, 4)) for m, s in seen.items()]

    def _span(self, span: str, cache: dict) -> tuple[str, float] | None:
        found = None
        for variant in {span.strip(), strip_fillers(span)}:
            if variant not in cache:
                cache[variant] = self.lookup(variant) if normalise_title(variant) else None
            hit = cache[variant]
            if hit and (found is None or hit[1] > found[1]):
                found = hit
        return found
