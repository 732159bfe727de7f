"""IntakeService: the intake API served on a socket, with its own pool and metrics."""

import logging
import types

from aiohttp import web

from aws.client import acting_as
from core.health import Health
from core.runtime import serve
from core.sealing import Keyring
from intake.app import create_app
from intake.auth import Authenticator
from intake.config import IntakeConfig
from metrics.exposition import process_registry
from metrics.intake import IntakeMetrics
from metrics.pool import PoolMetrics
from pool.blobs import BlobStore
from pool.config import PoolConfig
from pool.pool import QueuePool
from pool.queues import Role
from state.config import StateConfig
from state.store import State

log = logging.getLogger(__name__)


class IntakeService:
    """Serves the intake API until closed; closing waits for requests under way."""

    def __init__(
        self,
        pool_config: PoolConfig,
        config: IntakeConfig,
        auth: Authenticator | None = None,
        keyring: Keyring | None = None,
        blobs: BlobStore | None = None,
        state: StateConfig | None = None,
    ) -> None:
        self.config = config
        for name, count in (auth.shared_names() if auth is not None else {}).items():
            # Expected during a rotation; otherwise two clients would see one scope.
            log.warning(
                "an API key name is held by several keys", extra={"name": name, "keys": count}
            )
        self.registry = process_registry()
        #: Turns fatal when a background task (the pool's flushers) dies.
        self.health = Health()
        own = pool_config.without_ses_feedback
        self.pool = QueuePool(own, PoolMetrics(self.registry), self.health, blobs, Role.PRODUCER)
        self.state = State.of_process(state, self.health, self.registry)
        self.app = create_app(
            config,
            self.pool,
            IntakeMetrics(self.registry),
            self.registry,
            auth,
            keyring,
            state=self.state,
        )
        self.port = config.port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Base URL of the API."""
        return f"http://{self.config.host}:{self.port}"

    async def __aenter__(self) -> "IntakeService":
        with acting_as("intake"):  # its pool's tasks and its request handlers inherit it
            self._runner, self.port = await serve(
                self.app,
                self.config.host,
                self.config.port,
                "MAILPOOL_HTTP_PORT or --port",
                self.config.idle_timeout_s,
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        if self._runner is not None:
            # Stops listening, lets requests under way finish, then closes the pool
            # (pending sends are flushed first).
            await self._runner.cleanup()
            self._runner = None
