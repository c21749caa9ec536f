"""recstream.transport: which partitions are re-read from the start, and which URL Faust gets."""
from collections import namedtuple

from recstream.transport import faust_broker_url, never_committed

TP = namedtuple("TP", "topic partition")


def test_only_stream_partitions_without_an_offset_are_sought_to_the_beginning():
    committed = {TP("app-movie-updates", 0): None, TP("app-movie-updates", 1): 0,
                 TP("app-movie-updates", 2): 412, TP("app-user_history-changelog", 0): None}
    assert never_committed(committed, {"app-user_history-changelog"}) == [
        TP("app-movie-updates", 0), TP("app-movie-updates", 1)]


def test_kafka_brokers_get_the_seeking_transport_and_tansu_keeps_its_own():
    assert faust_broker_url("kafka://h:9092") == "recstream-kafka://h:9092"
    assert faust_broker_url("aiokafka://h:9092") == "recstream-kafka://h:9092"
    assert faust_broker_url("tansu://127.0.0.1:9092") == "tansu://127.0.0.1:9092"
