"""Routing is pure, stable across processes, well spread, and moves few groups on resize."""

import collections
import subprocess
import sys

import pytest

from pool.routing import group_key, jump_hash, shard_for

GROUPS = [f"tenant-{i}" for i in range(20_000)]


def test_jump_hash_matches_the_reference_vectors() -> None:
    # Vectors of the reference implementation (Lamping & Veach; dgryski/go-jump's tests).
    cases = [(1, 1, 0), (42, 57, 43), (0xDEAD10CC, 1, 0), (0xDEAD10CC, 666, 361), (256, 1024, 520)]
    assert [jump_hash(key, buckets) for key, buckets, _ in cases] == [s for _, _, s in cases]


def test_known_routes_never_change() -> None:
    # Pinned: a change here would re-route every group of a running deployment.
    assert group_key("tenant-1") == 0x1CF4F12A05DD0EF3
    groups = ("a", "b", "c", "tenant-42", "ana@example.test")
    assert [shard_for(g, 8) for g in groups] == [6, 0, 7, 5, 3]


def test_same_shard_in_another_process() -> None:
    code = "from pool.routing import shard_for; print([shard_for(f'g{i}', 7) for i in range(50)])"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert other.strip() == str([shard_for(f"g{i}", 7) for i in range(50)])


@pytest.mark.parametrize("shards", [1, 2, 4, 8, 16])
def test_groups_spread_evenly(shards: int) -> None:
    counts = collections.Counter(shard_for(g, shards) for g in GROUPS)
    assert set(counts) == set(range(shards))
    expected = len(GROUPS) / shards
    assert all(abs(c - expected) < 0.1 * expected for c in counts.values())


@pytest.mark.parametrize("shards", [1, 3, 4, 8])
def test_growing_by_one_moves_only_groups_to_the_new_shard(shards: int) -> None:
    moved = [g for g in GROUPS if shard_for(g, shards) != shard_for(g, shards + 1)]
    assert all(shard_for(g, shards + 1) == shards for g in moved)
    fraction = len(moved) / len(GROUPS)
    assert abs(fraction - 1 / (shards + 1)) < 0.02


def test_rejects_empty_pool() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        shard_for("g", 0)
