"""Child processes for benchmarks: mailpool commands and helpers, with their environment."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def local_credentials() -> None:
    """Local engines check no signature, but botocore still needs credentials to sign."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")


def mailpool_env(endpoint: str, prefix: str, shards: int, **settings: str) -> dict[str, str]:
    """The environment of a `mailpool` child on ``endpoint`` with pool ``prefix``."""
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "MAILPOOL_QUEUE_PREFIX": prefix,
        "MAILPOOL_SHARDS": str(shards),
        "MAILPOOL_LOG_LEVEL": "WARNING",
        **settings,
    }


@contextmanager
def child(*args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m <args>`, up once it printed its first line; terminated on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert process.stdout is not None
    process.stdout.readline()  # its "listening"/"running" line
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen[Any], timeout_s: float = 30.0) -> None:
    """Terminate ``process`` and wait for it; kill it if it outlasts ``timeout_s``."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tree_cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU of a process and every live descendant (a prefork pool's children);
    of the process alone when not ``children``."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for stat in os.scandir("/proc"):
        if not stat.name.isdigit():
            continue
        try:
            with open(f"/proc/{stat.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.name)] = int(fields[1])
        # utime, stime: the process's own (cutime/cstime would add exited children again).
        cpu[int(stat.name)] = sum(int(v) for v in fields[11:13]) / tick
    tree, frontier = {pid}, [pid] if children else []
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sum(cpu.get(p, 0.0) for p in tree)


def ratio(part: float, whole: float) -> str:
    """``part / whole`` to two places; "n/a" where ``whole`` read 0 (CPU from /proc moves in
    10 ms ticks, so a run as short as the suite's smoke runs can read none)."""
    return f"{part / whole:.2f}" if whole else "n/a"
