"""The ``mailpool`` command: queues, intake, sender and the local dev stack."""

import argparse
import dataclasses
import os
import pathlib
import sys
import time
from collections.abc import Sequence

from aws import client as aws
from aws.errors import AwsError, QueueMissing
from core import logs, runtime
from core.network import is_loopback
from core.sealing import Keyring
from core.settings import SettingError, env_opt, env_str
from intake.auth import Authenticator, check_exposure
from intake.config import IntakeConfig
from intake.service import IntakeService
from localsqs.store import DataDirError, DataDirUnusable
from mailpool import admin
from mailpool.configure import blob_store, override, pool_config, state_config
from pool.sqs import SqsClient
from sender.config import SenderConfig
from sender.providers import PROVIDERS, make_provider
from sender.service import SenderService


async def _intake(args: argparse.Namespace) -> int:
    config = override(IntakeConfig.from_env(), host=args.host, port=args.port)
    auth = Authenticator.from_env()
    check_exposure(auth, config.host)
    pool = pool_config(args)
    service = IntakeService(
        pool, config, auth, Keyring.from_env(), blob_store(), state_config(pool)
    )
    return await runtime.run_service(
        service, service.health, lambda: f"intake listening on {service.url}"
    )


async def _sender(args: argparse.Namespace) -> int:
    config = override(
        SenderConfig.from_env(),
        concurrency=args.concurrency,
        metrics_port=args.metrics_port,
        streams=tuple(args.streams.split(",")) if args.streams else None,
    )
    pool = pool_config(args)
    provider = make_provider(args.providers, streams=pool.all_streams)
    service = SenderService(
        pool, config, provider, Keyring.from_env(), blob_store(), state_config(pool)
    )
    return await runtime.run_service(
        service, service.health, lambda: f"sender running; metrics on port {service.metrics_port}"
    )


async def _lambda_source(args: argparse.Namespace) -> int:
    from serverless.config import LambdaConfig
    from serverless.service import LocalLambdaService
    from serverless.worker import LambdaWorker

    sender = override(SenderConfig.from_env(), metrics_port=args.metrics_port)
    pool = pool_config(args)
    worker = LambdaWorker(
        pool,
        sender,
        LambdaConfig.from_env(),
        make_provider(args.providers, streams=pool.all_streams),
        Keyring.from_env(),
        blob_store(),
        state_config(pool),
    )
    service = LocalLambdaService(
        worker, pool, sender.metrics_host, sender.metrics_port, sender.wait_time_s
    )
    return await runtime.run_service(
        service,
        service.health,
        lambda: f"Lambda worker under a local event source; metrics on port {service.metrics_port}",
    )


async def _dev(args: argparse.Namespace) -> int:
    from mailpool.dev import DevConfig, run_dev

    dev = override(
        DevConfig(),
        sqs_port=args.sqs_port,
        smtp_port=args.smtp_port,
        outbox=None if args.outbox is None else pathlib.Path(args.outbox),
        webhooks_metrics_port=args.webhooks_metrics_port,
        events=None if args.events is None else pathlib.Path(args.events),
        sqs_data=None if args.sqs_data is None else pathlib.Path(args.sqs_data),
        worker=args.worker,
    )
    intake = override(IntakeConfig.from_env(), host="127.0.0.1", port=args.port)
    # Short long polls keep Ctrl-C quick; the local engine does not bill per call.
    sender = override(
        dataclasses.replace(SenderConfig.from_env(), wait_time_s=2, backoff_s=2, grace_s=10.0),
        metrics_port=args.metrics_port,
    )
    pool = pool_config(args)
    return await run_dev(dev, pool, intake, sender, runtime.stop_event(), state_config(pool))


async def _webhooks(args: argparse.Namespace) -> int:
    from webhooks import endpoints
    from webhooks.config import WebhooksConfig
    from webhooks.service import WebhooksService

    config = override(WebhooksConfig.from_env(), metrics_port=args.metrics_port)
    configured = endpoints.from_env()
    if not configured:
        print(
            "mailpool: no webhook endpoints: set MAILPOOL_WEBHOOKS_FILE or MAILPOOL_WEBHOOK_URL",
            file=sys.stderr,
        )
        return 2
    pool = pool_config(args)
    service = WebhooksService(pool, config, configured, Keyring.from_env(), state_config(pool))
    return await runtime.run_service(
        service,
        service.health,
        lambda: (
            f"webhooks running for {len(configured)} endpoint(s); metrics on port "
            f"{service.metrics_port}"
        ),
    )


async def _webhooks_secret(args: argparse.Namespace) -> int:
    from webhooks.signing import new_secret

    print(new_secret())
    print('      the endpoint\'s secret (MAILPOOL_WEBHOOK_SECRET or "secret" in the webhooks file)')
    return 0


async def _webhooks_redrive(args: argparse.Namespace) -> int:
    from webhooks.redrive import redrive_events

    config = pool_config(args)
    async with SqsClient.from_config(config) as client:
        moved = await redrive_events(client, config, args.limit)
    print(f"redrove {moved} event(s) to {config.events_name()}")
    return 0


async def _localsqs(args: argparse.Namespace) -> int:
    from localsqs.server import LocalSqs, LocalSqsConfig

    config = override(
        LocalSqsConfig.from_env(),
        host=args.host,
        port=args.port,
        data_dir=None if args.data_dir is None else pathlib.Path(args.data_dir),
        durability=args.durability,
        throttle=args.throttle,
        entry_faults=args.entry_faults,
        duplicates=args.duplicates,
        exposed=args.expose_unauthenticated or None,
    )
    stop = runtime.stop_event()
    async with LocalSqs(config) as server:
        print(
            f"localsqs (SQS and DynamoDB) listening on {server.url} (data in {config.data_dir})",
            flush=True,
        )
        if config.exposed and not is_loopback(config.host):
            print(
                "WARNING: localsqs checks no credentials; anyone who can reach "
                f"{server.url} can read and delete every queued email",
                file=sys.stderr,
                flush=True,
            )
        await stop.wait()
    return 0


def _pool_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shards", type=int, help="queues in the pool (MAILPOOL_SHARDS)")
    parser.add_argument("--prefix", help="queue name prefix (MAILPOOL_QUEUE_PREFIX)")
    parser.add_argument("--endpoint-url", help="SQS endpoint (AWS_ENDPOINT_URL)")
    parser.add_argument("--region", help="AWS region (AWS_REGION / AWS_DEFAULT_REGION)")


def build_parser() -> argparse.ArgumentParser:
    """The command line; flags override the environment."""
    parser = argparse.ArgumentParser(prog="mailpool", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    queues = commands.add_parser("queues", help="create or inspect the queue pool")
    queue_actions = queues.add_subparsers(dest="action", required=True)
    for name, handler, text in (
        ("create", admin.queues_create, "create (or update) every queue of the pool"),
        ("status", admin.queues_status, "approximate depth of every shard and DLQ"),
    ):
        action = queue_actions.add_parser(name, help=text)
        _pool_flags(action)
        action.set_defaults(handler=handler)

    deploy = commands.add_parser("deploy", help="deploy on AWS")
    deploy_actions = deploy.add_subparsers(dest="action", required=True)
    template = deploy_actions.add_parser(
        "template", help="write the AWS CloudFormation template of this configuration (YAML)"
    )
    template.add_argument("--shards", type=int, help="queues in the pool (MAILPOOL_SHARDS)")
    template.add_argument("--prefix", help="queue name prefix (MAILPOOL_QUEUE_PREFIX)")
    template.add_argument(
        "--providers", help="delivery providers (MAILPOOL_PROVIDERS; default ses)"
    )
    template.add_argument(
        "--ses-feedback", choices=("on", "off"), help="the SES feedback queue (default on)"
    )
    template.add_argument(
        "--scheme",
        choices=("internal", "internet-facing"),
        default="internal",
        help="the intake load balancer's scheme (default internal: producers in the VPC)",
    )
    template.add_argument(
        "--certificate-arn",
        help="the ACM certificate of the HTTPS listener (needed for internet-facing)",
    )
    template.add_argument(
        "--kms",
        action="store_true",
        help="a customer-managed KMS key for queues, table, bodies, secrets and logs",
    )
    template.add_argument(
        "--worker",
        choices=("ecs", "lambda"),
        default="ecs",
        help="where senders run: ecs (default) or lambda (the Lambda worker on the queues)",
    )
    template.add_argument("--output", "-o", default="-", help="a file (default: stdout)")
    template.set_defaults(handler=admin.deploy_template)
    package = deploy_actions.add_parser(
        "package", help="build the Lambda worker's deployment zip (python3.11, x86_64) from wheels"
    )
    package.add_argument(
        "--output", "-o", default="dist/mailpool-lambda.zip", help="the zip (default %(default)s)"
    )
    package.set_defaults(handler=admin.deploy_package)

    dlq = commands.add_parser("dlq", help="list, redrive or purge dead-lettered messages")
    dlq_actions = dlq.add_subparsers(dest="action", required=True)
    listing = dlq_actions.add_parser("list", help="ids, reasons and receive counts (no content)")
    listing.add_argument("--limit", type=int, default=1000, help="per shard (default 1000)")
    listing.set_defaults(handler=admin.dlq_list)
    moving = dlq_actions.add_parser("redrive", help="move messages back to their source shard")
    moving.add_argument("--rate", type=float, default=50.0, help="messages/s (default 50)")
    moving.add_argument("--limit", type=int, default=1_000_000, help="at most this many")
    moving.set_defaults(handler=admin.dlq_redrive)
    purging = dlq_actions.add_parser("purge", help="delete every dead-lettered message")
    purging.add_argument("--yes", action="store_true", help="really delete them")
    purging.set_defaults(handler=admin.dlq_purge)
    for action in (listing, moving, purging):
        _pool_flags(action)

    keys = commands.add_parser("keys", help="API keys for the intake")
    key_actions = keys.add_subparsers(dest="action", required=True)
    new = key_actions.add_parser("new", help="make a key and its keys-file line")
    new.add_argument(
        "--name",
        required=True,
        help="the client's name, its scope (status, suppressions, idempotency, quotas): "
        "1-64 letters, digits, '_' or '-'; a rotated key takes the name of the key it replaces",
    )
    new.set_defaults(handler=admin.keys_new)
    sealing = key_actions.add_parser("encryption", help="make an envelope encryption key")
    sealing.add_argument("--id", default=time.strftime("k%Y%m%d"), help="the key's id")
    sealing.set_defaults(handler=admin.keys_encryption)

    state = commands.add_parser("state", help="the state store's secret")
    state_actions = state.add_subparsers(dest="action", required=True)
    state_secret = state_actions.add_parser("secret", help="make a MAILPOOL_STATE_SECRET")
    state_secret.set_defaults(handler=admin.state_secret)

    sup = commands.add_parser("suppressions", help="list, add or remove suppressed addresses")
    sup_actions = sup.add_subparsers(dest="action", required=True)
    sup_list = sup_actions.add_parser("list", help="the list of one scope, in address order")
    sup_list.add_argument("--limit", type=int, default=1000, help="at most this many")
    sup_list.set_defaults(handler=admin.suppressions_list)
    sup_add = sup_actions.add_parser("add", help="suppress an address by hand")
    sup_add.set_defaults(handler=admin.suppressions_add)
    sup_remove = sup_actions.add_parser("remove", help="mail an address again")
    sup_remove.set_defaults(handler=admin.suppressions_remove)
    for action in (sup_list, sup_add, sup_remove):
        _pool_flags(action)
        action.add_argument("--scope", default="default", help="the API key's name (default)")
        action.add_argument(
            "--list",
            dest="list_name",
            help="one mailing list's unsubscribes (default: the key's whole list)",
        )
    for action in (sup_add, sup_remove):
        action.add_argument("address")

    intake = commands.add_parser("intake", help="serve the HTTP intake API")
    _pool_flags(intake)
    intake.add_argument("--host", help="listen address (MAILPOOL_HTTP_HOST)")
    intake.add_argument("--port", type=int, help="listen port (MAILPOOL_HTTP_PORT)")
    intake.set_defaults(handler=_intake)

    sender = commands.add_parser("sender", help="deliver queued email")
    _pool_flags(sender)
    sender.add_argument("--concurrency", type=int, help="messages in flight (MAILPOOL_CONCURRENCY)")
    sender.add_argument("--metrics-port", type=int, help="metrics port (MAILPOOL_METRICS_PORT)")
    sender.add_argument(
        "--providers",
        help=f"ordered providers, e.g. smtp or smtp,ses (MAILPOOL_PROVIDERS; known: "
        f"{', '.join(PROVIDERS)})",
    )
    sender.add_argument(
        "--streams", help="serve only these streams, comma-separated (MAILPOOL_SENDER_STREAMS)"
    )
    sender.set_defaults(handler=_sender)

    source = commands.add_parser(
        "lambda-source",
        help="run the Lambda worker under a local SQS event source (as Lambda would invoke it)",
    )
    _pool_flags(source)
    source.add_argument("--metrics-port", type=int, help="metrics port (MAILPOOL_METRICS_PORT)")
    source.add_argument("--providers", help="ordered providers (MAILPOOL_PROVIDERS)")
    source.set_defaults(handler=_lambda_source)

    hooks = commands.add_parser("webhooks", help="deliver events to webhook endpoints")
    _pool_flags(hooks)
    hooks.add_argument("--metrics-port", type=int, help="metrics port (default 9102)")
    hooks.set_defaults(handler=_webhooks)
    hook_actions = hooks.add_subparsers(dest="action")
    hook_secret = hook_actions.add_parser("secret", help="make a Standard Webhooks secret")
    hook_secret.set_defaults(handler=_webhooks_secret)
    hook_redrive = hook_actions.add_parser(
        "redrive", help="replay dead-lettered events (each to the endpoint that gave up)"
    )
    hook_redrive.add_argument("--limit", type=int, default=1_000_000, help="at most this many")
    _pool_flags(hook_redrive)
    hook_redrive.set_defaults(handler=_webhooks_redrive)

    engine = commands.add_parser(
        "localaws",
        aliases=["localsqs"],
        help="serve the embedded engine: SQS and the DynamoDB subset mailpool uses",
    )
    engine.add_argument("--host", help="listen address (MAILPOOL_LOCALSQS_HOST, 127.0.0.1)")
    engine.add_argument("--port", type=int, help="listen port (MAILPOOL_LOCALSQS_PORT, 9324)")
    engine.add_argument("--data-dir", help="data directory (MAILPOOL_LOCALSQS_DATA)")
    engine.add_argument(
        "--expose-unauthenticated",
        action="store_true",
        help="allow a non-loopback --host although localsqs checks no credentials: anyone "
        "who can reach the port reads every queued email (unsafe)",
    )
    engine.add_argument(
        "--durability",
        choices=("fsync", "os"),
        help="fsync: on disk before each answer; os: handed to the OS (survives kill -9)",
    )
    engine.add_argument(
        "--throttle",
        type=float,
        nargs="?",
        const=300.0,
        help="answer like SQS at its quota: calls/s per queue and action (default 300)",
    )
    engine.add_argument(
        "--entry-faults",
        type=float,
        help="fault injection: fail this fraction of SendMessageBatch entries (RequestThrottled)",
    )
    engine.add_argument(
        "--duplicates",
        type=float,
        help="fault injection: store this fraction of standard-queue messages twice",
    )
    engine.set_defaults(handler=_localsqs)

    config = commands.add_parser("config", help="the settings a process reads, as it sees them")
    config.add_argument(
        "--process",
        choices=(*admin.PROCESSES, "all"),
        default="all",
        help="whose settings (default all)",
    )
    config.add_argument(
        "--markdown",
        action="store_true",
        help="the configuration reference (docs/configuration.md)",
    )
    config.set_defaults(handler=admin.config_show)

    dev = commands.add_parser("dev", help="run the whole local stack in the foreground")
    dev.add_argument("--shards", type=int, help="queues in the pool (MAILPOOL_SHARDS)")
    dev.add_argument("--prefix", help="queue name prefix (MAILPOOL_QUEUE_PREFIX)")
    dev.add_argument("--port", type=int, help="intake port (MAILPOOL_HTTP_PORT, default 8080)")
    dev.add_argument("--metrics-port", type=int, help="sender metrics port (default 9101)")
    dev.add_argument("--sqs-port", type=int, help="embedded SQS engine port (default 9324)")
    dev.add_argument("--smtp-port", type=int, help="SMTP capture port (default 2525)")
    dev.add_argument("--outbox", help="Maildir for delivered mail (default var/outbox)")
    dev.add_argument("--events", help="where the local receiver keeps events (var/events.jsonl)")
    dev.add_argument(
        "--webhooks-metrics-port", type=int, help="webhooks dispatcher metrics port (default 9102)"
    )
    dev.add_argument("--sqs-data", help="localsqs data directory (default var/localsqs)")
    dev.add_argument(
        "--worker",
        choices=("sender", "lambda"),
        help="sender (default), or the Lambda worker under a local SQS event source",
    )
    dev.set_defaults(handler=_dev)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mailpool`` console script."""
    args = build_parser().parse_args(argv)
    logs.setup(env_str(os.environ, "MAILPOOL_LOG_LEVEL", "INFO"))
    # The tests' record of every AWS call, held against the IAM policies (mailpool.iam).
    aws.record_calls(env_opt(os.environ, "MAILPOOL_AWS_RECORD"))
    try:
        return runtime.run(args.handler(args))
    except DataDirError as exc:  # unusable: exit 2, like any setting; a full disk: 1
        where = "--sqs-data" if args.command == "dev" else "--data-dir or MAILPOOL_LOCALSQS_DATA"
        print(f"mailpool: {exc}; {where} picks another directory", file=sys.stderr)
        return 2 if isinstance(exc, DataDirUnusable) else 1
    except (SettingError, ValueError) as exc:
        print(f"mailpool: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or directory it was told to use, unreadable or missing
        print(f"mailpool: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except QueueMissing:
        print(
            "mailpool: the pool's queues do not exist; create them with `mailpool queues create`",
            file=sys.stderr,
        )
        return 1
    except AwsError as exc:
        print(f"mailpool: {exc} ({type(exc).__name__})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
