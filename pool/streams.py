"""Message streams: pools of their own, so that a password reset never waits behind a
newsletter.

A stream is a named set of shards with a weight and a cap. Every email names its stream
(``"stream": "bulk"``; the first stream is the default); routing by group stays inside the
stream. The pool numbers all shards of all streams one after another, so everything that
works per shard (batching, receive loops, DLQs, depth) works unchanged; the first stream
keeps the pool's historical queue names (``<prefix>-<k>.fifo``), the others carry their
name (``<prefix>-<stream>-<k>.fifo``).

``MAILPOOL_STREAMS`` declares them: ``name:shards[:weight[:cap]]``, comma-separated, e.g.
``transactional:2:8,bulk:2:1:0.75``. A sender serves streams by weight when several have
work (work-conserving: an idle stream's share goes to the others) and never lets one hold
more than its cap (a fraction of its concurrency), so bulk can never take what
transactional needs.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from core.settings import SettingError

DEFAULT = "transactional"
_NAME = re.compile(r"^[a-z][a-z0-9]{0,19}$")


@dataclass(frozen=True, slots=True)
class Stream:
    """One stream: its name, shards, weight and cap (fraction of a sender's concurrency)."""

    name: str
    shards: int
    weight: float = 1.0
    cap: float = 1.0

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"a stream's name is 1-20 lower-case letters and digits, not {self.name!r}"
            )
        if self.shards < 1:
            raise ValueError(f"stream {self.name}: shards must be at least 1")
        if self.weight <= 0:
            raise ValueError(f"stream {self.name}: the weight must be positive")
        if not 0 < self.cap <= 1:
            raise ValueError(f"stream {self.name}: the cap is a fraction within (0, 1]")


def parse(spec: str) -> tuple[Stream, ...]:
    """``name:shards[:weight[:cap]]``, comma-separated."""
    streams = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, *numbers = part.split(":")
        if not 1 <= len(numbers) <= 3:
            raise ValueError(f"a stream is name:shards[:weight[:cap]], not {part!r}")
        try:
            values = [float(n) for n in numbers]
        except ValueError:
            raise ValueError(f"a stream is name:shards[:weight[:cap]], not {part!r}") from None
        streams.append(Stream(name.strip(), int(values[0]), *values[1:]))
    if not streams:
        raise ValueError("MAILPOOL_STREAMS names no stream")
    names = [s.name for s in streams]
    if len(set(names)) != len(names):
        raise ValueError("a stream is named twice")
    return tuple(streams)


def spec(streams: tuple[Stream, ...]) -> str:
    """``streams`` as ``MAILPOOL_STREAMS`` writes them."""
    return ",".join(f"{s.name}:{s.shards}:{s.weight:g}:{s.cap:g}" for s in streams)


def parse_values(spec: str, variable: str) -> tuple[tuple[str, str], ...]:
    """``stream:value``, comma-separated (a per-stream setting such as
    ``MAILPOOL_STREAM_RATES``); the names are checked against a pool by ``check_names``."""
    found: list[tuple[str, str]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, value = part.partition(":")
        if not name.strip() or not value.strip():
            raise ValueError(f"{variable} entries are stream:value, not {part!r}")
        found.append((name.strip(), value.strip()))
    names = [name for name, _ in found]
    if len(set(names)) != len(names):
        raise ValueError(f"{variable} names a stream twice")
    return tuple(found)


def parse_rates(spec: str, variable: str) -> tuple[tuple[str, float], ...]:
    """``stream:per_second``, comma-separated; each rate positive."""
    rates = []
    for name, value in parse_values(spec, variable):
        try:
            rate = float(value)
        except ValueError:
            rate = 0.0
        if not rate > 0:
            raise ValueError(f"{variable}: {name}'s rate must be a positive number, not {value!r}")
        rates.append((name, rate))
    return tuple(rates)


def check_names(names: Iterable[str], streams: tuple[Stream, ...], variable: str) -> None:
    """Refuse a per-stream setting that names a stream the pool does not have."""
    unknown = set(names) - {s.name for s in streams}
    if unknown:
        raise SettingError(f"{variable} names no stream of this pool: {', '.join(sorted(unknown))}")
