"""The ingest producer's partitioner must place every key where aiokafka's default (and Java's) would."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from services.core.kafka import KeyPartitioner


@given(keys=st.lists(st.binary(max_size=80), min_size=1, max_size=50), partitions=st.integers(1, 64))
def test_keys_land_on_the_default_partitioners_partition_every_time(
    keys: list[bytes], partitions: int
) -> None:
    partitioner, default = KeyPartitioner(max_keys=8), DefaultPartitioner()
    all_partitions = list(range(partitions))
    for key in keys + keys:  # the second pass is served from the remembered hashes
        assert partitioner(key, all_partitions, all_partitions) == default(
            key, all_partitions, all_partitions
        )


def test_messages_without_a_key_go_to_an_available_partition() -> None:
    partitioner = KeyPartitioner()
    assert {partitioner(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
    assert {partitioner(None, [0, 1], []) for _ in range(50)} <= {0, 1}
