"""Raw clients on either wire: an aiobotocore client whose hot calls (``aws.wire.HOT``) go
over the lean wire instead, for what speaks to AWS APIs directly (the conformance suite,
the wire benchmark)."""

import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from aws.client import USER_AGENT
from aws.wire import HOT, LeanWire


class LeanClient:
    """Hot calls over ``lean``, every other call over the aiobotocore ``client``."""

    def __init__(self, client: Any, lean: LeanWire) -> None:
        self._client = client
        self._lean = lean
        self.meta = client.meta
        self.exceptions = client.exceptions

    def __getattr__(self, name: str) -> Any:
        if name in self._lean.operations:
            lean = self._lean

            def call(**params: Any) -> Awaitable[dict[str, Any]]:
                return lean.call(name, params)

            return call
        return getattr(self._client, name)


@contextlib.asynccontextmanager
async def raw_client(
    service: str, endpoint: str | None, wire: str, *, region: str = "us-east-1"
) -> AsyncIterator[Any]:
    """An aiobotocore client for ``service`` (one attempt, 30 s reads) on ``wire``."""
    session = get_session()
    config = AioConfig(retries={"total_max_attempts": 1}, read_timeout=30)
    async with session.create_client(
        service, region_name=region, endpoint_url=endpoint, config=config
    ) as client:
        if wire == "botocore" or service not in HOT:
            yield client
            return
        lean = await LeanWire.beside(
            client,
            session,
            user_agent=USER_AGENT,
            connect_timeout_s=10,
            read_timeout_s=30,
            max_connections=10,
        )
        if lean is None:
            yield client
            return
        try:
            yield LeanClient(client, lean)
        finally:
            await lean.close()
