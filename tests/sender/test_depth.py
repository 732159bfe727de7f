"""The oldest-message age estimate: an upper bound that grows while a backlog is stuck."""

from sender.depth import DepthPoller


def poller() -> DepthPoller:
    return DepthPoller(pool=None, metrics=None, interval_s=15)  # type: ignore[arg-type]


def test_an_empty_shard_has_age_zero() -> None:
    assert poller().age(0, visible=0, now=1000.0) == 0.0


def test_a_backlog_seen_at_start_ages_from_when_it_was_first_seen() -> None:
    depth = poller()
    assert depth.age(0, visible=5, now=1000.0) == 0.0
    assert depth.age(0, visible=5, now=1030.0) == 30.0


def test_the_newest_received_message_bounds_the_age_while_the_sender_keeps_up() -> None:
    depth = poller()
    depth.age(0, visible=0, now=900.0)
    depth.received(0, sent_at=990.0)
    assert depth.age(0, visible=3, now=1000.0) == 10.0
    depth.received(0, sent_at=999.0)
    assert depth.age(0, visible=3, now=1001.0) == 2.0


def test_a_stalled_sender_makes_the_age_grow() -> None:
    depth = poller()
    depth.received(0, sent_at=1000.0)
    assert depth.age(0, visible=50, now=1060.0) == 60.0
    assert depth.age(0, visible=80, now=1120.0) == 120.0


def test_an_old_receive_does_not_inflate_a_fresh_backlog() -> None:
    depth = poller()
    depth.received(0, sent_at=100.0)  # long ago, then the shard drained
    depth.age(0, visible=0, now=5000.0)
    assert depth.age(0, visible=1, now=5010.0) == 10.0


def test_shards_are_independent() -> None:
    depth = poller()
    depth.received(1, sent_at=990.0)
    depth.age(0, visible=0, now=995.0)
    assert depth.age(0, visible=2, now=1000.0) == 5.0
    assert depth.age(1, visible=2, now=1000.0) == 10.0
