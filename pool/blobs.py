"""Large bodies in S3: the extended-client pattern, for messages past the queue's size limit.

``QueuePool.send`` puts such a body at ``s3://<bucket>/<prefix><dedup id>`` with server-side
encryption, and the queue carries a small pointer to it:

    {"v": 1, "id": <dedup id>, "s3": {"bucket": str, "key": str, "size": int}}

(``id`` keeps the email's id readable to whoever inspects the queue or its DLQ).
``QueuePool.body`` fetches it, and ``QueuePool.delete`` deletes it with its message; a
bucket lifecycle rule (set by ``mailpool queues create``) expires what is left, such as
bodies of dead-lettered messages, after the DLQ's retention. Like ``sqs.py``, it talks to
AWS through ``aws.client`` and maps failures onto ``aws.errors``.
"""

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from aws.client import AwsClient, error_code
from aws.errors import AwsError, Misconfigured, Rejected, Unavailable
from core.settings import env_int, env_opt, env_str
from pool.messages import Pointer

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


#: A pointer is far smaller than this; longer bodies are never parsed as one.
_POINTER_MAX = 2048


class BlobMissing(Rejected):
    """The object a pointer names is gone (expired or deleted)."""


def encode_pointer(message_id: str, pointer: Pointer) -> str:
    """The queue body that stands for a body kept in S3."""
    location = {"bucket": pointer.bucket, "key": pointer.key, "size": pointer.size}
    return orjson.dumps({"v": 1, "id": message_id, "s3": location}).decode()


def pointer_of(body: str) -> Pointer | None:
    """The S3 location a queue body points to, or None for a body carried inline."""
    if len(body) > _POINTER_MAX or '"s3":' not in body:
        return None
    try:
        location = orjson.loads(body)["s3"]
        return Pointer(str(location["bucket"]), str(location["key"]), int(location.get("size", 0)))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


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


def lifecycle_rule(config: BlobConfig) -> dict[str, Any]:
    """The bucket's rule that expires leftover bodies (shared with the deployment template)."""
    return {
        "ID": "mailpool-bodies",
        "Filter": {"Prefix": config.prefix},
        "Status": "Enabled",
        "Expiration": {"Days": config.expire_days},
    }


class BlobStore(AwsClient):
    """Puts, gets and deletes envelope bodies in one S3 bucket."""

    service = "s3"

    def __init__(self, config: BlobConfig) -> None:
        if not config.bucket:
            raise Misconfigured("a blob store needs a bucket (MAILPOOL_S3_BUCKET)")
        super().__init__(
            region=config.region, endpoint_url=config.endpoint_url, attempts=2, path_style=True
        )
        self.config = config
        self.bucket: str = config.bucket

    @classmethod
    def from_env(cls) -> "BlobStore | None":
        """The store MAILPOOL_S3_BUCKET names, if it names one (S3's endpoint: botocore's,
        ``AWS_ENDPOINT_URL_S3`` and the rest)."""
        config = BlobConfig.from_env()
        return cls(config) if config.bucket else None

    def failure(self, action: str, exc: Exception) -> AwsError:
        """Map a failed call onto the pool's errors (a missing object is BlobMissing)."""
        code, status = error_code(exc)
        if code in _MISSING:
            return BlobMissing(f"{action}: {code}", code=code)
        if not code or status >= 500 or code in ("SlowDown", "RequestTimeout"):
            return Unavailable(f"{action}: {code or type(exc).__name__}", code=code or None)
        return Rejected(f"{action}: {code}", code=code)

    def key_for(self, message_id: str, body: bytes) -> str:
        """The object key of a message's body: its id and a digest of the body, so that a
        replay with the same deduplication id but another body (which SQS drops) writes an
        object of its own and never alters the one the queued message points to."""
        digest = hashlib.blake2b(body, digest_size=12).hexdigest()
        return f"{self.config.prefix}{message_id}.{digest}"

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
        except AwsError:
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            if self.config.region and self.config.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.config.region}
            await self._call("create_bucket", **kwargs)
        await self._call(
            "put_bucket_lifecycle_configuration",
            Bucket=self.bucket,
            LifecycleConfiguration={"Rules": [lifecycle_rule(self.config)]},
        )
