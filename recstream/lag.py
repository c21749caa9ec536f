"""Consumer lag per topic role, from the consumer's own view (moved out of monitor.py)."""
from __future__ import annotations


async def consumer_lag(consumer, roles: dict[str, str]) -> dict[str, int]:
    """Messages behind the end, per role (topic name -> role), over assigned partitions.

    ``highwater`` is the end offset the consumer's last fetch saw (correct on
    Tansu, whose ListOffsets answer is not); the consumed offset is Faust's
    committed one, or the fetch position before the first commit.
    """
    lag = dict.fromkeys(roles.values(), 0)
    committed = getattr(consumer, "_committed_offset", {})
    for tp in consumer.assignment():
        role = roles.get(tp.topic)
        if role is None:
            continue
        try:
            high = consumer.highwater(tp)
            done = committed.get(tp)
            if done is None:
                done = await consumer.position(tp)
        except Exception:  # noqa: BLE001 - a partition mid-rebalance: skip it this round
            continue
        if high is not None and done is not None:
            lag[role] += max(0, int(high) - int(done))
    return lag
