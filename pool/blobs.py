"""Large bodies in S3: the extended-client pattern, for emails past the queue's size limit.

The envelope goes to ``s3://<bucket>/<prefix><id>`` with server-side encryption, and the
queue carries a small pointer to it. Senders fetch it, and delete it once the email is
delivered; a bucket lifecycle rule (set by ``mailpool queues create``) expires what is
left, such as bodies of dead-lettered messages, after the DLQ's retention. This module and
``sqs.py`` are the pool's only AWS seams; errors map onto ``pool.errors`` alike.
"""

import contextlib
import os
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from mailpool.settings import env_int, env_opt, env_str
from pool.errors import Misconfigured, PoolError, Rejected, Unavailable

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class BlobMissing(Rejected):
    """The object a pointer names is gone (expired or deleted)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BlobConfig:
    """Where large bodies go; no bucket turns the feature off (413 past the limit)."""

    bucket: str | None = None
    prefix: str = "mailpool/bodies/"
    region: str | None = None
    endpoint_url: str | None = None
    #: Objects left behind (dead-lettered messages) expire after this many days.
    expire_days: int = 15

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "BlobConfig":
        """Read MAILPOOL_S3_BUCKET, MAILPOOL_S3_PREFIX, MAILPOOL_S3_EXPIRE_DAYS."""
        d = cls()
        return cls(
            bucket=env_opt(environ, "MAILPOOL_S3_BUCKET"),
            prefix=env_str(environ, "MAILPOOL_S3_PREFIX", d.prefix),
            region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
            expire_days=env_int(environ, "MAILPOOL_S3_EXPIRE_DAYS", d.expire_days),
        )


def _map(action: str, exc: Exception) -> PoolError:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in _MISSING:
            return BlobMissing(f"{action}: {code}", code=code)
        if status >= 500 or code in ("SlowDown", "RequestTimeout"):
            return Unavailable(f"{action}: {code}", code=code)
        return Rejected(f"{action}: {code}", code=code)
    return Unavailable(f"{action}: {type(exc).__name__}")


class BlobStore:
    """Puts, gets and deletes envelope bodies in one S3 bucket."""

    def __init__(self, config: BlobConfig) -> None:
        if not config.bucket:
            raise Misconfigured("a blob store needs a bucket (MAILPOOL_S3_BUCKET)")
        self.config = config
        self.bucket: str = config.bucket
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def __aenter__(self) -> "BlobStore":
        self._client = await self._stack.enter_async_context(
            get_session().create_client(
                "s3",
                region_name=self.config.region,
                endpoint_url=self.config.endpoint_url,
                config=AioConfig(
                    retries={"total_max_attempts": 2, "mode": "standard"},
                    s3={"addressing_style": "path"},
                ),
            )
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _call(self, action: str, **kwargs: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await getattr(self._client, action)(**kwargs)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise _map(action, exc) from exc
        return result

    def key_for(self, message_id: str) -> str:
        """The object key of a message's body."""
        return f"{self.config.prefix}{message_id}"

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` encrypted at rest (SSE-S3)."""
        await self._call(
            "put_object", Bucket=self.bucket, Key=key, Body=data, ServerSideEncryption="AES256"
        )

    async def get(self, bucket: str, key: str) -> bytes:
        """Fetch an object; BlobMissing when it is gone."""
        result = await self._call("get_object", Bucket=bucket, Key=key)
        async with result["Body"] as stream:
            data: bytes = await stream.read()
        return data

    async def delete(self, bucket: str, key: str) -> None:
        """Delete an object (a missing one is fine)."""
        await self._call("delete_object", Bucket=bucket, Key=key)

    async def provision(self) -> None:
        """Create the bucket if missing and expire leftovers under the prefix."""
        try:
            await self._call("head_bucket", Bucket=self.bucket)
        except PoolError:
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            if self.config.region and self.config.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.config.region}
            await self._call("create_bucket", **kwargs)
        await self._call(
            "put_bucket_lifecycle_configuration",
            Bucket=self.bucket,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "mailpool-bodies",
                        "Filter": {"Prefix": self.config.prefix},
                        "Status": "Enabled",
                        "Expiration": {"Days": self.config.expire_days},
                    }
                ]
            },
        )
