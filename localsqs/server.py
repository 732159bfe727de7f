"""LocalSqs: the engine served on 127.0.0.1, in-process or as ``mailpool localsqs``."""

import asyncio
import contextlib
import logging
import os
import pathlib
import types
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from core.network import host_guard, is_loopback
from core.runtime import start_site
from core.settings import SettingError, env_float, env_int, env_str
from localsqs.engine import Engine
from localsqs.objects import Objects
from localsqs.protocol import ENGINE, TABLES, create_app
from localsqs.s3 import OBJECTS
from localsqs.store import Durability, Store
from localsqs.tables import Tables
from localsqs.throttle import Throttle

log = logging.getLogger(__name__)

#: SQS's default quota per FIFO queue and API action, when throttling is on.
SQS_FIFO_QUOTA = 300.0

#: What moves the engine's port (for the error when it is taken).
PORT_SETTING = "MAILPOOL_LOCALSQS_PORT or --port (mailpool dev: --sqs-port)"


@dataclass(frozen=True, kw_only=True, slots=True)
class LocalSqsConfig:
    """Where localsqs listens and keeps its data, and how it answers."""

    host: str = "127.0.0.1"
    port: int = 9324
    data_dir: pathlib.Path = pathlib.Path("var/localsqs")
    durability: Durability = "fsync"
    #: Calls/s per queue and action before ThrottlingException; 0 turns throttling off.
    throttle: float = 0.0
    #: Fault injection: this fraction of SendMessageBatch entries fails with RequestThrottled.
    entry_faults: float = 0.0
    #: Fault injection: this fraction of messages sent to a standard queue is stored twice
    #: (one message ID, two receipts), as SQS's at-least-once delivery may hand one over.
    duplicates: float = 0.0
    region: str = "us-east-1"
    account: str = "000000000000"
    sweep_interval_s: float = 30.0
    #: Listen beyond loopback although nothing is authenticated (``--expose-unauthenticated``).
    exposed: bool = False

    def check_exposure(self) -> None:
        """Refuse a listen address other machines can reach, unless told it is wanted: the
        engine checks no credentials and holds whole emails (and events with addresses)."""
        if is_loopback(self.host) or self.exposed:
            return
        raise SettingError(
            f"refusing to listen on {self.host}: localsqs checks no credentials, so anyone who "
            "can reach it reads and deletes every queued email; pass --expose-unauthenticated "
            "(MAILPOOL_LOCALSQS_EXPOSE_UNAUTHENTICATED=true) if that is really wanted"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "LocalSqsConfig":
        """Read MAILPOOL_LOCALSQS_*."""
        d = cls()
        durability = env_str(environ, "MAILPOOL_LOCALSQS_DURABILITY", d.durability)
        if durability not in ("fsync", "os"):
            raise SettingError("MAILPOOL_LOCALSQS_DURABILITY must be fsync or os")
        return cls(
            host=env_str(environ, "MAILPOOL_LOCALSQS_HOST", d.host),
            port=env_int(environ, "MAILPOOL_LOCALSQS_PORT", d.port),
            data_dir=pathlib.Path(env_str(environ, "MAILPOOL_LOCALSQS_DATA", str(d.data_dir))),
            durability=durability,  # type: ignore[arg-type]
            throttle=env_float(environ, "MAILPOOL_LOCALSQS_THROTTLE", d.throttle),
            entry_faults=env_float(environ, "MAILPOOL_LOCALSQS_ENTRY_FAULTS", d.entry_faults),
            duplicates=env_float(environ, "MAILPOOL_LOCALSQS_DUPLICATES", d.duplicates),
            exposed=env_str(environ, "MAILPOOL_LOCALSQS_EXPOSE_UNAUTHENTICATED", "") == "true",
        )


class LocalSqs:
    """Opens the store, serves the SQS API, sweeps expired messages; closing stops all."""

    def __init__(self, config: LocalSqsConfig) -> None:
        self.config = config
        self.port = config.port
        self.store = Store(config.data_dir / "localsqs.db", config.durability)
        self._runner: web.AppRunner | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The endpoint URL (for AWS_ENDPOINT_URL)."""
        return f"http://{self.config.host}:{self.port}"

    async def __aenter__(self) -> "LocalSqs":
        self.config.check_exposure()
        if not is_loopback(self.config.host):
            log.warning(
                "listening beyond loopback without authentication: anyone who can reach this "
                "port can read every queued email",
                extra={"url": self.url},
            )
        await asyncio.to_thread(self.store.open)
        try:
            site_port = await self._serve()
        except BaseException:
            await asyncio.to_thread(self.store.close)
            raise
        self.port = site_port
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="localsqs-sweeper")
        return self

    async def _serve(self) -> int:
        # The engine needs its own URL for QueueUrl; with port 0 it is known only after bind.
        engine = Engine(
            self.store,
            region=self.config.region,
            account=self.config.account,
            base_url="http://pending",
            duplicates=self.config.duplicates,
        )
        await engine.start()
        tables = Tables(self.store, region=self.config.region, account=self.config.account)
        await tables.start()
        objects = Objects(
            self.store,
            self.config.data_dir / "objects",
            sync=self.config.durability == "fsync",
        )
        await objects.start()
        throttle = Throttle(self.config.throttle, self.config.entry_faults)
        # On loopback, only requests naming a loopback host: a web page that a browser was
        # tricked into resolving to 127.0.0.1 (DNS rebinding) names its own host.
        guard = [host_guard()] if is_loopback(self.config.host) else []
        app = create_app(engine, throttle, tables, objects, guard)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        try:
            port = await start_site(self._runner, self.config.host, self.config.port, PORT_SETTING)
        except BaseException:
            await self._runner.cleanup()
            raise
        engine.rebase(f"http://{self.config.host}:{port}")
        return port

    async def _sweep_forever(self) -> None:
        assert self._runner is not None
        engine = self._runner.app[ENGINE]
        while True:
            await asyncio.sleep(self.config.sweep_interval_s)
            dropped = await engine.sweep()
            if dropped:
                log.info("dropped messages past retention", extra={"count": dropped})
            expired = await self._runner.app[TABLES].sweep()
            if expired:
                log.info("deleted items past their TTL", extra={"count": expired})
            gone = await self._runner.app[OBJECTS].sweep()
            if gone:
                log.info("deleted objects their lifecycle expired", extra={"count": gone})

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._runner is not None:
            await self._runner.cleanup()
        await asyncio.to_thread(self.store.close)
