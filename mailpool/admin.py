"""The ``mailpool`` commands that administer rather than run: queues, dead letters, keys
and secrets, suppressions, and the deployment template."""

import argparse
import asyncio
import dataclasses
import os
import pathlib
import sys
import time

import orjson

from core.catalog import SETTINGS, Setting
from core.sealing import new_key as new_encryption_key
from core.settings import env_str
from intake.auth import check_name, new_key
from mailpool.cloudformation import DeployConfig, template, template_yaml
from mailpool.configure import blob_store, override, pool_config, state_config
from pool.blobs import BlobConfig
from pool.config import PoolConfig
from pool.dlq import list_dead_letters, purge_dead_letters, redrive
from pool.pool import QueuePool
from pool.provision import provision
from pool.sqs import SqsClient
from serverless.config import LambdaConfig
from state.config import new_secret as new_state_secret
from state.suppressions import Suppression, Suppressions, normalise
from state.table import StateTable


async def deploy_template(args: argparse.Namespace) -> int:
    pool = override(PoolConfig.from_env(), prefix=args.prefix, shards=args.shards)
    feedback = args.ses_feedback or env_str(os.environ, "MAILPOOL_SES_FEEDBACK", "on")
    providers = args.providers or env_str(os.environ, "MAILPOOL_PROVIDERS", "ses")
    config = DeployConfig(
        pool=dataclasses.replace(pool, ses_feedback=feedback == "on"),
        blobs=BlobConfig.from_env(),
        providers=tuple(p.strip() for p in providers.split(",") if p.strip()),
        scheme=args.scheme,
        certificate_arn=args.certificate_arn or "",
        kms=args.kms,
        worker=args.worker,
        lambda_worker=LambdaConfig.from_env(),
    )
    doc = template(config)
    text = template_yaml(doc)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        await asyncio.to_thread(pathlib.Path(args.output).write_text, text)
        print(f"wrote {args.output}: {len(doc['Resources'])} resources")
    return 0


async def deploy_package(args: argparse.Namespace) -> int:
    from mailpool.package import build

    built = await asyncio.to_thread(build, pathlib.Path(args.output))
    print(
        f"wrote {built.path}: {built.files} files, {built.zipped / 1e6:.1f} MB zipped, "
        f"{built.unzipped / 1e6:.1f} MB unpacked; handler serverless.handler.handler, "
        "runtime python3.11 (x86_64)"
    )
    return 0


async def queues_create(args: argparse.Namespace) -> int:
    config = pool_config(args)
    async with SqsClient.from_config(config) as client:
        shards = await provision(client, config)
    for shard in shards:
        print(f"shard {shard.shard}: {shard.url}  dlq: {shard.dlq_url}")
    state = state_config(config)
    if state.enabled:
        async with StateTable(state) as table:
            done = await table.provision()
        print(f"state table {state.table}: {done} (on-demand, encrypted, TTL on expires)")
    blobs = blob_store()
    if blobs is not None:
        async with blobs:
            await blobs.provision()
        print(
            f"bucket {blobs.bucket}: bodies under {blobs.config.prefix} expire after "
            f"{blobs.config.expire_days} days"
        )
    return 0


async def queues_status(args: argparse.Namespace) -> int:
    config = pool_config(args)
    from metrics.exposition import process_registry
    from metrics.pool import PoolMetrics

    async with QueuePool(config, PoolMetrics(process_registry())) as pool:
        depths = await pool.depth()
    print(f"{'shard':>5} {'visible':>9} {'in flight':>9} {'delayed':>9} {'dlq':>9}  queue")
    for d in depths:
        print(
            f"{d.shard:>5} {d.visible:>9} {d.in_flight:>9} {d.delayed:>9} {d.dead_lettered:>9}"
            f"  {config.queue_name(d.shard)}"
        )
    return 0


def mailpool_id(body: str, fallback: str) -> str:
    try:  # the id stays readable in a sealed envelope
        doc = orjson.loads(body)
        return str(doc["id"]) if isinstance(doc, dict) and "id" in doc else f"sqs:{fallback}"
    except orjson.JSONDecodeError:
        return f"sqs:{fallback}"


async def dlq_list(args: argparse.Namespace) -> int:
    config = pool_config(args)
    async with SqsClient.from_config(config) as client:
        letters = await list_dead_letters(client, config, args.limit)
    print(f"{'shard':>5}  {'id':<40} {'reason':<28} {'receives':>8} {'age':>8}")
    now = time.time()
    for letter in letters:
        age = f"{(now - letter.sent_at) / 60:.0f}m"
        print(
            f"{letter.shard:>5}  {mailpool_id(letter.body, letter.message_id):<40} "
            f"{letter.reason:<28} {letter.receive_count:>8} {age:>8}"
        )
    print(f"{len(letters)} dead-lettered message(s)")
    return 0


async def dlq_redrive(args: argparse.Namespace) -> int:
    config = pool_config(args)
    async with SqsClient.from_config(config) as client:
        moved = await redrive(client, config, rate=args.rate, limit=args.limit)
    print(f"redrove {moved} message(s) to their source shards")
    return 0


async def dlq_purge(args: argparse.Namespace) -> int:
    if not args.yes:
        print("mailpool: purging deletes every dead-lettered message; add --yes", file=sys.stderr)
        return 2
    config = pool_config(args)
    async with SqsClient.from_config(config) as client:
        await purge_dead_letters(client, config)
    print(f"purged the dead-letter queues of {config.shards} shard(s)")
    return 0


async def keys_new(args: argparse.Namespace) -> int:
    key, line = new_key(check_name(args.name))
    print(f"key:  {key}")
    print("      give it to the client (Authorization: Bearer <key>); it is not stored")
    print(f"line: {line}")
    print("      append it to the file MAILPOOL_API_KEYS_FILE names")
    print(f"      the name {args.name!r} is this client's scope: its emails' status, suppressions,")
    print("      idempotency keys and quotas; give a rotated key the name of the key it replaces")
    return 0


async def keys_encryption(args: argparse.Namespace) -> int:
    print(new_encryption_key(args.id))
    print("      put it first in MAILPOOL_ENCRYPTION_KEYS (comma-separated) on intake and senders")
    return 0


async def state_secret(args: argparse.Namespace) -> int:
    print(new_state_secret())
    print("      MAILPOOL_STATE_SECRET on every intake (signs ids and unsubscribe links)")
    return 0


def _suppressions(args: argparse.Namespace) -> Suppressions:
    config = dataclasses.replace(state_config(pool_config(args)), enabled=True)
    return Suppressions(StateTable(config), cache_s=0.0)


async def suppressions_list(args: argparse.Namespace) -> int:
    suppressions = _suppressions(args)
    async with suppressions.table:
        after, shown = None, 0
        while shown < args.limit:
            entries, after = await suppressions.page(
                args.scope, after, min(1000, args.limit), args.list_name
            )
            for entry in entries[: args.limit - shown]:
                doc = entry.document()
                print(f"{doc['address']}  {doc['reason']}  {doc['created_at']}")
            shown += len(entries)
            if after is None:
                break
    return 0


async def suppressions_add(args: argparse.Namespace) -> int:
    suppressions = _suppressions(args)
    entry = Suppression(normalise(args.address), "manual", time.time(), list=args.list_name)
    async with suppressions.table:
        await suppressions.add(args.scope, entry)
    print(f"suppressed {entry.address} for {args.scope}")
    return 0


async def suppressions_remove(args: argparse.Namespace) -> int:
    suppressions = _suppressions(args)
    async with suppressions.table:
        removed = await suppressions.remove(args.scope, args.address, args.list_name)
    print(f"removed {args.address} from {args.scope}" if removed else "it was not suppressed")
    return 0 if removed else 1


PROCESSES = ("intake", "sender", "webhooks", "localaws", "deploy")
CONFIG_HEADER = """# Configuration

Every setting mailpool reads, from the environment; flags (`mailpool <command> --help`)
override them, and `mailpool config --process <name>` prints what a process would use, secrets
masked. AWS settings are read the way botocore reads them: `AWS_ENDPOINT_URL` /
`AWS_ENDPOINT_URL_<SERVICE>`, `AWS_REGION` / `AWS_DEFAULT_REGION`, and the usual credential
chain. This page is generated from the one declaration, `core/catalog.py` (`mailpool config
--markdown`); a test fails when the two differ. Why a table and not pydantic-settings: the
packages' configs stay small frozen dataclasses built where they are used (and, in tests,
directly), what a setting carries beyond a type and a default (the processes that read it,
secrecy, this page) is plain data either way, and it costs no dependency and no start-up
time in processes that start often (a Lambda worker). Back to the [README](../README.md).

| variable | default | read by | meaning |
|---|---|---|---|
"""


def _shown(setting: Setting) -> str:
    if setting.shown:
        return setting.shown
    if setting.default is None:
        return "unset"
    if isinstance(setting.default, bool):
        return "true" if setting.default else "false"
    if isinstance(setting.default, float) and setting.default.is_integer():
        return str(int(setting.default))
    return str(setting.default) or "empty"


def config_markdown() -> str:
    """docs/configuration.md, from the declaration."""
    rows = [
        f"| `{s.name}` | `{_shown(s)}` | {', '.join(s.readers)} | "
        f"{s.doc}{' (secret)' if s.secret else ''} |"
        for s in SETTINGS
    ]
    return CONFIG_HEADER + "\n".join(rows) + "\n"


async def config_show(args: argparse.Namespace) -> int:
    """The settings a process reads, as it would see them now (secrets masked)."""
    if args.markdown:
        sys.stdout.write(config_markdown())
        return 0
    for setting in SETTINGS:
        wanted = args.process in setting.readers or "every" in setting.readers
        if not (wanted or args.process == "all"):
            continue
        raw = os.environ.get(setting.name)
        if raw:
            print(f"{setting.name}={'****' if setting.secret else raw}")
        else:
            print(f"{setting.name}={_shown(setting)}  (default)")
    return 0
