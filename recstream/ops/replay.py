"""``recstream replay``: a movielog file produced into the movielog topic, keyed by user."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

from recstream.kafka import ensure_topic, line_key, producer


async def replay_file(bootstrap: list[str], topic: str, partitions: int, path: Path,
                      rate: float = 0.0, limit: int = 0) -> int:
    """Produce each line of ``path`` to ``topic``, keyed by user id; → lines sent."""
    await ensure_topic(bootstrap, topic, partitions)
    out = producer(bootstrap, linger_ms=10, max_batch_size=512 * 1024)
    await out.start()
    sent = 0
    start = time.monotonic()
    try:
        with open(path, "rb") as lines:
            for raw in lines:
                line = raw.rstrip(b"\r\n")
                if not line and not raw.strip():
                    continue
                await out.send(topic, value=line, key=line_key(line))
                sent += 1
                if limit and sent >= limit:
                    break
                if rate > 0 and sent % 100 == 0:
                    ahead = sent / rate - (time.monotonic() - start)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        await out.flush()
    finally:
        await out.stop()
    return sent
