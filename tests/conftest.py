"""Shared fixtures: settings built from a dict, the real movielog sample, and an app
whose Kafka side is replaced by recorders (no broker, no event loop beyond the test's).

``app``/``rt`` come from :func:`recstream.app.create_app` exactly as a worker builds them;
only the edges that would talk to Kafka are swapped:

* every ``topic.send`` of ours and every ``rt.producer.produce`` appends ``(topic field, key, value)``
  to ``sent`` (encoded records are decoded back with the topic's value type);
* every table's changelog write is recorded in ``changelog`` (and still buffered by the
  unstarted producer, which is harmless);
* ``app.consumer.topic_partitions`` answers ``settings.partitions`` for any topic, as a
  consumer does once it has metadata (Faust asks it when a table is written, and the
  ingest agent asks it to decide between applying in place and re-keying).
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

from bench.procs import free_port  # noqa: F401  (re-exported: tests import it from here)
from recstream.settings import Settings

if TYPE_CHECKING:  # faust is imported by the fixtures that need it, not by tests/models
    import faust

    from recstream.parts import WorkerParts

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SAMPLES = DATA / "mlip-stream-samples"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_mapping({
        "data_dir": str(tmp_path / "data"),
        "web_host": "127.0.0.1",
        "web_port": free_port(),
        "partitions": 4,
        "n_factors": 8,
        "top_k": 20,
    })


def sample_path(name: str) -> Path:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"real sample not found at {path}")
    return path


@pytest.fixture(scope="session")
def sample_lines() -> list[str]:
    """Every line of the real movielog sample (SPEC §2.1), without line endings."""
    return sample_path("movielog_lines.txt").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="session")
def movies_jsonl() -> Path:
    return sample_path("movies.jsonl")


class Recorder:
    """What the app would have produced to Kafka."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, Any]] = []
        self.changelog: list[tuple[str, bytes, Any, int | None]] = []

    def on(self, topic: str) -> list[tuple[Any, Any]]:
        return [(key, value) for name, key, value in self.sent if name == topic]

    def writes(self, table: str, key: bytes | None = None) -> list[Any]:
        return [value for name, k, value, _ in self.changelog
                if name == table and (key is None or k == key)]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def app(settings: Settings, recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> faust.App:
    import faust

    from recstream.app import create_app, parts_of

    app = create_app(settings)
    rt = parts_of(app)
    field_of = {topic.get_topic_name(): field for field, topic in vars(rt.topics).items()}
    for field, topic in vars(rt.topics).items():
        async def send(*, key: Any = None, value: Any = None, _name: str = field,
                       **kwargs: Any) -> None:
            recorder.sent.append((_name, key, value))
        monkeypatch.setattr(topic, "send", send)
    if hasattr(rt, "producer"):  # the fast path: already-encoded values straight to the producer
        async def produce(topic, key, value) -> None:
            record = getattr(topic, "value_type", None)
            if isinstance(value, (bytes, bytearray)) and isinstance(record, type) and \
                    issubclass(record, faust.Record):
                value = record.loads(value)
            recorder.sent.append((field_of[topic.get_topic_name()], key, value))
        monkeypatch.setattr(rt.producer, "produce", produce)
    for table in rt.tables.all():
        original = table.send_changelog

        def send_changelog(partition, key, value, *args, _name=table.name, _orig=original,
                           **kwargs):
            recorder.changelog.append((_name, key, value, partition))
            return _orig(partition, key, value, *args, **kwargs)
        monkeypatch.setattr(table, "send_changelog", send_changelog)
    async def changelog_send(table, key, value, partition):  # the direct write path
        recorder.changelog.append((table.name, key, value, partition))
        future = asyncio.get_running_loop().create_future()
        future.cancel()  # never acknowledged: no persisted offset is recorded
        return future
    monkeypatch.setattr(rt.changelog, "send", changelog_send)
    monkeypatch.setattr(app.consumer, "topic_partitions", lambda topic: settings.partitions)
    return app


@pytest.fixture
def rt(app: faust.App) -> WorkerParts:
    from recstream.app import parts_of

    return parts_of(app)


@pytest.fixture
def make_event(app: faust.App) -> Callable[..., faust.Event]:
    """A real Faust event as a consumer would deliver it (topic, partition, offset)."""
    import faust
    from faust.types import Message

    offsets: dict[tuple[str, int], int] = {}

    def make(value: Any, *, key: bytes | None = None, topic: str = "movielog",
             partition: int = 0, offset: int | None = None) -> faust.Event:
        if offset is None:
            offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        message = Message(topic=topic, partition=partition, offset=offset,
                          timestamp=time.time(), timestamp_type=0, headers=[], key=key,
                          value=value, checksum=None)
        return faust.Event(app, key, value, {}, message)

    return make
