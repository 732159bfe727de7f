"""A process that cannot start says so in one line, naming what to change, and exits 2:
a port in use, a data directory it cannot use, a file it cannot read."""

import os
import pathlib
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest


@pytest.fixture
def taken() -> Iterator[int]:
    """A port something already listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def mailpool(*args: str, cwd: pathlib.Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "MAILPOOL_LOG_LEVEL": "WARNING", **env}
    return subprocess.run(
        [sys.executable, "-m", "mailpool", *args],
        capture_output=True, text=True, timeout=60, cwd=cwd, env=environ, check=False,
    )  # fmt: skip


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no traceback
    return lines[0]


DEV_PORTS = ("--port", "--sqs-port", "--smtp-port", "--metrics-port", "--webhooks-metrics-port")


@pytest.mark.parametrize(
    ("flag", "says"),
    [
        ("--port", "MAILPOOL_HTTP_PORT or --port"),
        ("--sqs-port", "--sqs-port"),
        ("--smtp-port", "--smtp-port"),
        ("--metrics-port", "MAILPOOL_METRICS_PORT or --metrics-port"),
        ("--webhooks-metrics-port", "--webhooks-metrics-port"),
    ],
)
def test_make_run_with_a_port_taken_names_the_flag_that_moves_it(
    flag: str, says: str, taken: int, tmp_path: pathlib.Path
) -> None:
    ports = [arg for other in DEV_PORTS for arg in (other, str(taken) if other == flag else "0")]
    line = one_line(mailpool("dev", *ports, cwd=tmp_path))
    assert f"127.0.0.1:{taken} (address already in use)" in line
    assert says in line


def test_the_engine_with_its_port_taken_or_an_unusable_data_directory(
    taken: int, tmp_path: pathlib.Path
) -> None:
    line = one_line(mailpool("localsqs", "--port", str(taken), cwd=tmp_path))
    assert "MAILPOOL_LOCALSQS_PORT or --port" in line
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = one_line(mailpool("localsqs", "--port", "0", "--data-dir", str(blocker / "d"),
                             cwd=tmp_path))  # fmt: skip
    assert str(blocker) in line
    assert "--data-dir or MAILPOOL_LOCALSQS_DATA" in line


def test_intake_with_a_keys_file_it_cannot_read(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "no-such-keys"
    line = one_line(mailpool("intake", cwd=tmp_path, MAILPOOL_API_KEYS_FILE=str(missing)))
    assert f"MAILPOOL_API_KEYS_FILE: cannot read {missing}" in line
