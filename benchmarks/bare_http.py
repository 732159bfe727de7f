"""The ceiling for intake: a bare aiohttp handler that parses the JSON and answers 202;
and, at ``POST /``, a stand-in webhook endpoint that answers 204 to anything.

python -m benchmarks.bare_http --port 8081
"""

import argparse
import asyncio
import secrets

import orjson
import uvloop
from aiohttp import web


async def accept(request: web.Request) -> web.Response:
    orjson.loads(await request.read())
    return web.Response(
        body=orjson.dumps({"id": secrets.token_hex(16)}),
        status=202,
        content_type="application/json",
    )


async def taken(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=204)


async def serve(port: int) -> None:
    app = web.Application()
    app.router.add_post("/v1/emails", accept)
    app.router.add_post("/", taken)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"bare aiohttp listening on {port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8081)
    uvloop.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
