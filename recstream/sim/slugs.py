"""Movie titles and their slug ids, made the way the course platform makes them.

The rules were read off the real catalogue (``movies.jsonl``): lower-case, ``,``
becomes ``_``, ``'`` ``!`` ``:`` ``&`` and non-ASCII letters vanish (so ``&``
leaves ``++`` and a leading accented letter a leading ``+``), ``. - *`` stay,
words are joined by ``+`` and the year is appended (a missing year leaves a
trailing ``+``).  Synthetic titles are drawn so that these odd forms occur.
"""
from __future__ import annotations

import numpy as np

_KEEP = set("abcdefghijklmnopqrstuvwxyz0123456789 _.-*")


def slugify(title: str, year: int | None) -> str:
    text = title.lower().replace(",", "_")
    text = "".join(ch for ch in text if ch in _KEEP)
    return text.replace(" ", "+") + "+" + (str(year) if year else "")


_ADJ = ("silent dark last lost golden broken hidden wild red blue secret little great final "
        "burning frozen iron distant hollow sweet bitter crimson eternal forgotten restless "
        "savage quiet endless midnight electric lonely").split()
_NOUN = ("river night city king heart road dream shadow storm garden summer winter house "
         "mirror island kingdom stranger promise letter ghost war sky fire ocean empire "
         "journey mountain station harbor circus machine diary planet").split()
_NAMES = ("anna max lucia henry rosa victor clara otto marie felix ivan nora leo "
          "jules kate omar vera hugo").split()
_PLACES = ("paris tokyo berlin harlem brooklyn rome cairo lisbon texas saint-tropez "
           "new+york dublin havana").split()
_FOREIGN = ("élan à été ólafur ñandú").split()


def _cap(word: str) -> str:
    return word.replace("+", " ").title()


def synthetic_titles(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct plausible titles, some with ``, & : ' ... -`` and accents."""
    titles: list[str] = []
    seen: set[str] = set()
    patterns = rng.integers(0, 12, size=4 * n + 64)
    picks = rng.integers(0, 1 << 30, size=(4 * n + 64, 4))
    for p, (a, b, c, d) in zip(patterns, picks):
        adj, noun = _cap(_ADJ[a % len(_ADJ)]), _cap(_NOUN[b % len(_NOUN)])
        name, place = _cap(_NAMES[c % len(_NAMES)]), _cap(_PLACES[d % len(_PLACES)])
        noun2 = _cap(_NOUN[d % len(_NOUN)])
        title = (
            f"The {adj} {noun}", f"{adj} {noun}", f"{noun} of the {adj} {noun2}",
            f"{name}'s {noun}", f"{noun}, {name}", f"{name} & {_cap(_NAMES[d % len(_NAMES)])}",
            f"{place}: The {adj} {noun}", f"{adj} {noun} {c % 4 + 2}", f"The {noun} in {place}",
            f"{_FOREIGN[a % len(_FOREIGN)].title()} {noun}", f"{noun}... {adj} {noun2}!",
            f"{name} and the {adj}-{noun}",
        )[p]
        if title in seen:
            continue
        seen.add(title)
        titles.append(title)
        if len(titles) == n:
            return titles
    # Word combinations ran out: number the remaining ones (sequels are real too).
    k = 2
    while len(titles) < n:
        for base in list(titles):
            if len(titles) == n:
                break
            if f"{base} {k}" not in seen:
                titles.append(f"{base} {k}")
                seen.add(titles[-1])
        k += 1
    return titles


def misspell(title: str, rng: np.random.Generator) -> str:
    """A human's rendering of a title: a typo, a dropped word, or lower case."""
    kind = int(rng.integers(0, 4))
    words = title.split()
    if kind == 0 and len(title) > 4:                       # swap two adjacent letters
        i = int(rng.integers(1, len(title) - 2))
        return title[:i] + title[i + 1] + title[i] + title[i + 2:]
    if kind == 1 and len(title) > 4:                       # drop a letter
        i = int(rng.integers(1, len(title) - 1))
        return title[:i] + title[i + 1:]
    if kind == 2 and len(words) > 2:                       # partial: first words only
        return " ".join(words[: len(words) - 1])
    return title.lower()
