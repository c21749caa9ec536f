"""The user API's objects (``GET /user/<ids>``, SPEC §2.2) → plain, validated dicts.

The API's quirks (numbers as strings, ``"null"``, missing fields, other names for the
free-text answers) are handled here, at the edge, so the cold-start agent only sees
clean fields.
"""
from __future__ import annotations

import asyncio
from typing import Any, Optional

import aiohttp
import orjson

from recstream.movie_api import as_float

LIKE_FIELDS = ("likes", "like", "liked_movies", "movies_liked", "what_movies_do_you_like")
DISLIKE_FIELDS = ("dislikes", "dislike", "disliked_movies", "movies_disliked",
                  "what_movies_do_you_not_like")

def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in
                             {"", "null", "none", "nan", "n/a"})


def parse_user(obj: Any) -> Optional[dict]:
    """One user object of the API → ``{user, age, gender, occupation, likes, dislikes}``.

    Tolerates the API's quirks: numbers as strings, ``"null"``, missing fields,
    other field names for the free-text answers.  ``None`` if it names no user.
    """
    if not isinstance(obj, dict) or ("message" in obj and "user_id" not in obj):
        return None
    raw_id = obj.get("user_id", obj.get("id"))
    uid = as_float(raw_id)
    if uid is None or uid < 0 or uid != int(uid):
        return None
    age = as_float(obj.get("age"))
    gender = obj.get("gender")
    occupation = obj.get("occupation")

    def text(fields: tuple[str, ...]) -> str:
        for f in fields:
            v = obj.get(f)
            if isinstance(v, list):
                v = ", ".join(str(x) for x in v if isinstance(x, str))
            if isinstance(v, str) and not _missing(v):
                return v
        return ""

    return {"user": int(uid),
            "age": int(age) if age is not None and 0 < age <= 120 else -1,
            "gender": gender.strip().upper()[:1] if isinstance(gender, str)
            and gender.strip().upper()[:1] in ("M", "F") else "",
            "occupation": occupation.strip() if isinstance(occupation, str)
            and not _missing(occupation) else "",
            "likes": text(LIKE_FIELDS), "dislikes": text(DISLIKE_FIELDS)}


def users_from_response(payload: Any) -> list[dict]:
    """The user objects of an answer: one object, or a list in request order."""
    items = payload if isinstance(payload, list) else [payload]
    return [u for u in (parse_user(p) for p in items) if u is not None]


def slug_title(slug: str) -> tuple[str, Optional[int]]:
    """A title and year read back from a movie id (``monsters_+inc.+2001``)."""
    head, _, tail = slug.rstrip("+").rpartition("+")
    if head and len(tail) == 4 and tail.isdigit():
        return head.replace("_", ",").replace("+", " ").strip(), int(tail)
    return slug.replace("_", ",").replace("+", " ").strip(), None


class UserApiUnavailable(Exception):
    """The API could not be reached or answered garbage (the message names the error type)."""


async def get_users(session: aiohttp.ClientSession, api_url: str, users: list[int]
                    ) -> tuple[str, Any]:
    """One ``GET /user/<ids>`` → ``(outcome, payload)``.

    ``outcome`` is ``ok`` (payload: the decoded JSON), ``not_found`` (404),
    ``rate_limited`` (429) or ``error`` (any other status); payload is None unless ok.
    """
    url = f"{api_url.rstrip('/')}/user/{','.join(map(str, users))}"
    try:
        async with session.get(url) as response:
            if response.status == 404:
                return "not_found", None
            if response.status != 200:
                return ("rate_limited" if response.status == 429 else "error"), None
            return "ok", orjson.loads(await response.read())
    except (aiohttp.ClientError, asyncio.TimeoutError, orjson.JSONDecodeError, OSError) as exc:
        raise UserApiUnavailable(type(exc).__name__) from exc
