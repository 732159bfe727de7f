"""What the ``mailpool`` commands build from the environment and their flags: the pool's,
the state store's and the body store's settings."""

import argparse
import dataclasses
from typing import Any

from pool.blobs import BlobStore
from pool.config import PoolConfig
from state.config import StateConfig


def override(config: Any, **flags: Any) -> Any:
    """``config`` with every flag that was given (not None) replacing its field."""
    return dataclasses.replace(config, **{k: v for k, v in flags.items() if v is not None})


def pool_config(args: argparse.Namespace) -> PoolConfig:
    return override(  # type: ignore[no-any-return]
        PoolConfig.from_env(),
        prefix=args.prefix,
        shards=args.shards,
        endpoint_url=getattr(args, "endpoint_url", None),
        region=getattr(args, "region", None),
    )


def blob_store() -> BlobStore | None:
    """The S3 store for large bodies, when MAILPOOL_S3_BUCKET names one."""
    return BlobStore.from_env()


def state_config(pool: PoolConfig) -> StateConfig:
    """The state store's settings (table ``<prefix>-state`` unless MAILPOOL_STATE_TABLE);
    ``--endpoint-url`` (one engine serving SQS and DynamoDB) applies to it too."""
    return StateConfig.from_env(prefix=pool.prefix, endpoint_url=pool.endpoint_url)
