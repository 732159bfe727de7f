"""An SMTP sink for benchmarks: accepts every message and forgets it.

python -m benchmarks.sink --port 2525
"""

import argparse
import asyncio

from aiosmtpd.smtp import SMTP, Envelope, Session


class Discard:
    """Accepts and counts."""

    count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        Discard.count += 1
        return "250 OK"


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Discard(), hostname="sink"), "127.0.0.1", port)
    print(f"sink listening on {port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=2525)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
