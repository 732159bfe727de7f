"""The engine keeps to itself: one engine per data directory, requests that name its own
host only, and uploads no larger than the largest object."""

import asyncio
import pathlib
import subprocess
import sys

import pytest

from localsqs.server import LocalSqs, LocalSqsConfig
from localsqs.store import DataDirInUse, Store


async def test_a_second_engine_on_one_data_directory_is_refused(tmp_path: pathlib.Path) -> None:
    first = Store(tmp_path / "localsqs.db")
    first.open()
    try:
        second = Store(tmp_path / "localsqs.db")
        with pytest.raises(DataDirInUse, match=f"another localsqs engine is using {tmp_path}"):
            second.open()
    finally:
        first.close()
    again = Store(tmp_path / "localsqs.db")  # released on close
    again.open()
    again.close()


async def test_the_cli_says_so_in_one_line(tmp_path: pathlib.Path) -> None:
    async with LocalSqs(LocalSqsConfig(port=0, data_dir=tmp_path)):
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "mailpool", "localsqs", "--port", "0",
             "--data-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "another localsqs engine is using" in line


async def exchange(port: int, head: bytes, body_chunks: int = 0) -> tuple[bytes, int]:
    """Send ``head``, then up to ``body_chunks`` chunks of 1 MiB (HTTP chunked) while the
    engine has not answered; what it answered, and the MiB sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    chunk = b"%x\r\n%s\r\n" % (1 << 20, b"x" * (1 << 20))
    sent = 0
    try:
        writer.write(head)
        read = asyncio.ensure_future(reader.read(65536))
        while sent < body_chunks and not read.done():
            try:
                writer.write(chunk)
                await writer.drain()
            except ConnectionError:
                break
            sent += 1
        async with asyncio.timeout(30):
            return await read, sent
    finally:
        writer.close()


async def test_a_chunked_upload_is_refused_once_it_passes_the_largest_object(
    tmp_path: pathlib.Path,
) -> None:
    async with LocalSqs(LocalSqsConfig(port=0, data_dir=tmp_path)) as engine:
        create = b"PUT /b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
        answer, _ = await exchange(engine.port, create)
        assert answer.startswith(b"HTTP/1.1 200")
        head = (b"PUT /b/k HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Encoding: aws-chunked\r\n\r\n")  # fmt: skip
        answer, sent = await exchange(engine.port, head, body_chunks=400)
    assert b"EntityTooLarge" in answer
    assert sent < 100  # refused at 65 MiB, not after the whole 400 MiB was taken in


async def test_the_engine_answers_only_requests_naming_its_own_host(
    tmp_path: pathlib.Path,
) -> None:
    async with LocalSqs(LocalSqsConfig(port=0, data_dir=tmp_path)) as engine:
        for host, status in ((b"127.0.0.1:9324", b"200"), (b"localhost", b"200"),
                             (b"rebind.attacker.example", b"421")):  # fmt: skip
            head = (b"PUT /b HTTP/1.1\r\nHost: " + host +
                    b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")  # fmt: skip
            answer, _ = await exchange(engine.port, head)
            assert answer.startswith(b"HTTP/1.1 " + status), answer
