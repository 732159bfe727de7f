"""An SMTP sink for benchmarks: accepts every message, forgets it, and counts.

python -m benchmarks.sink --port 2525 [--count-port 2526]

With ``--count-port``, a connection to that port is answered with the number of messages
accepted so far, then closed: how a benchmark knows the last email arrived (``delivered``).
"""

import argparse
import asyncio
import socket

from aiosmtpd.smtp import SMTP, Envelope, Session


class Discard:
    """Accepts and counts."""

    count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        Discard.count += 1
        return "250 OK"


async def _tell_count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(str(Discard.count).encode())
    await writer.drain()
    writer.close()


async def serve(port: int, count_port: int | None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Discard(), hostname="sink"), "127.0.0.1", port)
    if count_port is not None:
        await asyncio.start_server(_tell_count, "127.0.0.1", count_port)
    print(f"sink listening on {port}", flush=True)
    async with server:
        await server.serve_forever()


def delivered(count_port: int) -> int:
    """Messages the sink listening for counts on ``count_port`` has accepted so far."""
    with socket.create_connection(("127.0.0.1", count_port), timeout=5) as conn:
        return int(conn.makefile().read() or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--count-port", type=int, default=None)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.count_port))


if __name__ == "__main__":
    main()
