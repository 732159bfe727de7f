"""Every setting mailpool reads, declared once: its name, kind (and whether it is secret),
default, the processes that read it, what it does, and, where the value alone would
mislead, how the docs show the default. The readers in ``core.settings`` refuse a name
that is not declared here; ``docs/configuration.md`` is generated from this table
(``mailpool config --markdown``) and tests fail when either drifts from the code.

Why a table and not pydantic-settings: the packages' configs stay small frozen dataclasses
built where they are used (and, in tests, directly); what a declaration must carry beyond a
type and a default (the processes, secrecy, the docs) is plain data either way; and it costs
no dependency and no start-up time in processes that start often (a Lambda worker, say).
"""

from dataclasses import dataclass

Value = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Setting:
    """One environment variable."""

    name: str
    kind: str  # str, int, float or bool
    #: What the code uses when the variable is unset or empty (None: nothing, optional).
    default: Value
    #: The processes that read it: intake, sender, webhooks, localaws, deploy, or every.
    readers: tuple[str, ...]
    doc: str
    secret: bool = False
    #: How the docs show the default, where the value alone would mislead.
    shown: str = ""


def _value(kind: str, text: str) -> Value:
    if text == "-":
        return None
    if text == "''":
        return ""
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    return text == "true" if kind == "bool" else text


def _table(text: str) -> tuple[Setting, ...]:
    settings = []
    for line in text.strip().splitlines():
        name, kind, default, readers, doc, *shown = (cell.strip() for cell in line.split(" | "))
        kind, _, secret = kind.partition(" ")
        value = _value(kind, default)
        hidden = secret == "secret"
        settings.append(
            Setting(name, kind, value, tuple(readers.split()), doc, hidden, "".join(shown))
        )
    return tuple(settings)


# name | kind | default (- unset) | read by | what it does | how the docs show the default
SETTINGS = _table("""
MAILPOOL_API_KEYS | str secret | - | intake | API keys, comma-separated (see API keys)
MAILPOOL_API_KEYS_FILE | str | - | intake | a file of `name:sha256-hex` lines, one per key (`mailpool keys new`)
MAILPOOL_API_KEY_DIGESTS | str | - | intake | those `name:sha256-hex` lines, comma-separated: what a secret store hands a task
MAILPOOL_AUTH | str | auto | intake | `off`: no key checks at all, any listen address (an upstream proxy authenticates)
MAILPOOL_AWS_RECORD | str | - | every | a file to which every process appends each AWS call it makes (`make test` holds the IAM roles to it)
MAILPOOL_AWS_WIRE | str | lean | every | `botocore`: every hot AWS call through aiobotocore (the reference, an escape hatch) instead of mailpool's lean wire
MAILPOOL_BACKOFF | int | 5 | sender | seconds before a transient failure is retried; doubles per receive
MAILPOOL_CONCURRENCY | int | 64 | sender | messages in flight per sender process (across shards)
MAILPOOL_DELAY_BUDGET | float | 600.0 | sender | seconds a message may wait out provider throttling before it counts as a failed attempt
MAILPOOL_DEPTH_INTERVAL | float | 15.0 | sender | seconds between queue depth polls (sender)
MAILPOOL_ENCRYPTION_KEYS | str secret | - | intake sender webhooks | `id:base64-key,…`: seal envelopes (see Encryption)
MAILPOOL_EVENTS | str | on | intake sender webhooks | `off`: no events queue, no events (`<prefix>-events` and its DLQ otherwise; `queues create` makes them)
MAILPOOL_FAILOVER_COOLDOWN | float | 30.0 | sender | seconds a skipped provider stays skipped
MAILPOOL_FAILOVER_THRESHOLD | int | 5 | sender | transient failures in a row before a provider is skipped
MAILPOOL_GRACE | float | 30.0 | sender | on SIGTERM, seconds in-flight sends may take before they are cancelled
MAILPOOL_ALLOWED_HOSTS | str | '' | intake | on a loopback listen address: `Host` names intake answers to beside `localhost`, `127.0.0.1`, `::1` and the host of `MAILPOOL_PUBLIC_URL`, comma-separated (others get 421) | loopback names only
MAILPOOL_HTTP_HOST | str | 127.0.0.1 | intake | intake's listen address
MAILPOOL_HTTP_IDLE_TIMEOUT | float | 75.0 | intake | seconds a connection may stay open without a whole request's headers (idle keep-alive included); keep it above the load balancer's idle timeout (60 s)
MAILPOOL_HTTP_PORT | int | 8080 | intake | intake's port
MAILPOOL_HTTP_READ_TIMEOUT | float | 30.0 | intake | seconds a request's body may take to arrive (408 past it)
MAILPOOL_IDEMPOTENCY_HOURS | float | 24.0 | intake sender webhooks | how long an Idempotency-Key is remembered
MAILPOOL_LAMBDA_BATCH_SIZE | int | 10 | sender deploy | Lambda worker: records per invocation (1-10), in the event source mappings and the local event source
MAILPOOL_LAMBDA_CONCURRENCY | int | 16 | sender deploy | Lambda worker: invocations at once (the mappings' MaximumConcurrency, split across shards; at least 2 each)
MAILPOOL_LAMBDA_MARGIN | float | 10.0 | sender | Lambda worker: seconds of an invocation left below which no send starts (those messages go back as failures)
MAILPOOL_LAMBDA_TIMEOUT | float | 60.0 | sender deploy | Lambda worker: the function timeout (queues' visibility timeout should be 6 times it)
MAILPOOL_LAMBDA_WINDOW | float | 0.0 | sender deploy | Lambda worker: seconds a batch may wait to fill (MaximumBatchingWindowInSeconds)
MAILPOOL_KEY_STREAMS | str | '' | intake | API keys limited to streams, `name:stream+stream` comma-separated (`marketing:bulk`: the marketing tool's key cannot send as transactional; 403 naming `stream`) | every key, every stream
MAILPOOL_LOCALSQS_DATA | str | var/localsqs | localaws | the embedded engine's data directory | var/localsqs
MAILPOOL_LOCALSQS_DUPLICATES | float | 0.0 | localaws | fault injection: the fraction of messages sent to a standard queue stored twice (one message ID, two receipts), as SQS's at-least-once delivery may (tests)
MAILPOOL_LOCALSQS_DURABILITY | str | fsync | localaws | `fsync`: on disk before each answer; `os`: handed to the OS (survives kill -9)
MAILPOOL_LOCALSQS_ENTRY_FAULTS | float | 0.0 | localaws | fault injection: the fraction of SendMessageBatch entries the engine fails (tests)
MAILPOOL_LOCALSQS_EXPOSE_UNAUTHENTICATED | str | '' | localaws | `true`: listen on a non-loopback host although the engine checks no credentials (unsafe)
MAILPOOL_LOCALSQS_HOST | str | 127.0.0.1 | localaws | the embedded engine's listen address
MAILPOOL_LOCALSQS_PORT | int | 9324 | localaws | the embedded engine's port
MAILPOOL_LOCALSQS_THROTTLE | float | 0.0 | localaws | answer like SQS at its quota: calls/s per queue and action (0: off) | 0 (off)
MAILPOOL_LOG_LEVEL | str | INFO | every | log level (JSON lines on stderr)
MAILPOOL_MAX_ATTACHMENTS | int | 50 | intake | attachments per email (422 past it)
MAILPOOL_MAX_BACKOFF | int | 900 | sender | the longest such delay
MAILPOOL_MAX_BATCH | int | 500 | intake | emails per batch request
MAILPOOL_MAX_EMAIL_BYTES | int | 10485760 | intake | an email's text, html and decoded attachments (413 past it)
MAILPOOL_MAX_MESSAGE_BYTES | int | 1048576 | intake sender webhooks | queue message size limit: queues and DLQs are provisioned and converged to it; bodies past it less a 64th go to S3, or get 413 without a bucket (see Attachments)
MAILPOOL_MAX_RECEIVE_COUNT | int | 10 | intake sender webhooks | receives before SQS moves a message to its DLQ
MAILPOOL_MAX_REQUEST_BYTES | int | 15029590 | intake | request body cap (413 before parsing): by default what a largest email takes as JSON with base64 | 4/3 of MAILPOOL_MAX_EMAIL_BYTES + 1 MiB (15029590)
MAILPOOL_MESSAGE_ID_DOMAIN | str | - | sender | domain of the `Message-ID` header | the From address's domain
MAILPOOL_METRICS_HOST | str | 127.0.0.1 | sender | the sender's `/metrics` address
MAILPOOL_METRICS_PORT | int | 9101 | sender | the sender's `/metrics` port
MAILPOOL_PROVIDERS | str | smtp | sender deploy | ordered delivery providers: `smtp`, `ses`, `smtp,ses`, … (see Providers); the deploy template's default is `ses`
MAILPOOL_PUBLIC_URL | str | - | intake sender webhooks | base URL of the unsubscribe links (`<url>/unsubscribe/<token>`) | unset (mailpool dev: the intake's URL)
MAILPOOL_QUEUE_PREFIX | str | mailpool | intake sender webhooks | queues are `<prefix>-<k>.fifo` and `<prefix>-<k>-dlq.fifo`
MAILPOOL_QUEUE_TYPE | str | fifo | intake sender webhooks deploy | `standard`: the shards are standard queues `<prefix>-<k>` (the Lambda worker's variant: no order per group, copies possible, each claimed in the state table before it is sent; needs MAILPOOL_STATE)
MAILPOOL_RATE_BURST | int | 0 | intake | how many at once (default: one second's worth) | one second's worth
MAILPOOL_RATE_LIMIT | float | 0.0 | intake | emails/s each API key may submit to this intake process (429 past it; 0: no limit; see Quotas) | unset (no limit)
MAILPOOL_S3_BUCKET | str | - | intake sender | a bucket for emails larger than a queue message (see Attachments)
MAILPOOL_S3_EXPIRE_DAYS | int | 15 | intake sender | days after which a leftover body expires
MAILPOOL_S3_PREFIX | str | mailpool/bodies/ | intake sender | the key prefix of those bodies
MAILPOOL_SENDER_LARGE_BYTES | int | 67108864 | sender | bytes of S3-carried bodies a sender holds at once; one larger still goes, alone (see Attachments)
MAILPOOL_SEND_DEADLINE | float | 5.0 | intake sender webhooks | seconds a send (with retries) may take before intake answers 503; every answer comes within it plus 1 s
MAILPOOL_SEND_LINGER_MS | float | 2.0 | intake sender webhooks | how long a partial send batch waits for company (while calls to its shard are in flight, up to one call's duration, ≤ 20 ms); a full batch goes at once
MAILPOOL_SENDER_STREAMS | str | '' | sender | the streams this sender serves, comma-separated (a sender dedicated to transactional mail scales and fails on its own) | every stream
MAILPOOL_SES_CONFIGURATION_SET | str | - | sender | SES configuration set for every send (a stream named in MAILPOOL_SES_CONFIGURATION_SETS uses its own)
MAILPOOL_SES_CONFIGURATION_SETS | str | '' | sender | each stream's SES configuration set, `stream:set` comma-separated (e.g. `transactional:tx,bulk:news`: its own dedicated IPs, reputation and event destination; see Streams) | MAILPOOL_SES_CONFIGURATION_SET for every stream
MAILPOOL_SES_FEEDBACK | str | off | intake sender webhooks deploy | `on`: read SES event notifications from `<prefix>-ses-events` (see Events and webhooks); the deploy template makes that queue unless told `off`
MAILPOOL_SES_MAX_CONNECTIONS | int | 32 | sender | HTTP connections to SES per sender process
MAILPOOL_SES_RATE | float | 0.0 | sender | messages/s this process may hand to SES (0: no cap)
MAILPOOL_SES_TIMEOUT | float | 30.0 | sender | seconds one SES call may take
MAILPOOL_SHARDS | int | 4 | intake sender webhooks | queues in the pool (every process must agree)
MAILPOOL_SMTP_HOST | str | 127.0.0.1 | sender | the SMTP relay's host
MAILPOOL_SMTP_PASSWORD | str secret | - | sender | SMTP AUTH password
MAILPOOL_SMTP_POOL_SIZE | int | 16 | sender | persistent SMTP connections per sender process
MAILPOOL_SMTP_PORT | int | 2525 | sender | the SMTP relay's port
MAILPOOL_SMTP_RATE | float | 0.0 | sender | messages/s this process may hand to SMTP (0: no cap)
MAILPOOL_SMTP_TIMEOUT | float | 30.0 | sender | seconds per SMTP command
MAILPOOL_SMTP_TLS | str | none | sender | `none`, `starttls` or `tls` (implicit TLS)
MAILPOOL_SMTP_USERNAME | str | - | sender | SMTP AUTH user
MAILPOOL_SMTP_VALIDATE_CERTS | bool | true | sender | verify the relay's certificate
MAILPOOL_STATE | bool | false | intake sender webhooks | `on`: the state store (status, suppressions, unsubscribe, 24-hour idempotency; see Status) | off (mailpool dev: on)
MAILPOOL_STATE_SECRET | str secret | - | intake sender webhooks | base64, ≥ 32 bytes, the same on every intake: signs ids and unsubscribe links (`mailpool state secret`); comma-separated to rotate: the first signs, every one verifies | unset (mailpool dev: var/state.secret)
MAILPOOL_STATE_SECRET_ARN | str | - | sender | Lambda worker: the Secrets Manager secret holding MAILPOOL_STATE_SECRET, read at cold start (the template sets it)
MAILPOOL_STATE_TABLE | str | mailpool-state | intake sender webhooks | the DynamoDB table (`queues create` makes it; endpoint: `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL`) | <prefix>-state
MAILPOOL_STATUS_DAYS | float | 30.0 | intake sender webhooks | status records expire after this many days
MAILPOOL_STREAM_RATES | str | '' | sender | messages/s this process hands to the providers per stream, `stream:rate` comma-separated (`bulk:50`: bulk never takes the provider rate transactional needs), ahead of MAILPOOL_SMTP_RATE / MAILPOOL_SES_RATE | no cap per stream
MAILPOOL_STREAM_RATE_LIMITS | str | '' | intake | emails/s each API key may submit on a stream to this intake process, `stream:rate` comma-separated (429 naming `stream` past it), beside MAILPOOL_RATE_LIMIT | no quota per stream
MAILPOOL_STREAMS | str | '' | intake sender webhooks deploy | message streams, `name:shards[:weight[:cap]]` comma-separated (e.g. `transactional:2:8,bulk:2:1:0.75`); the first is the default and keeps the queue names `<prefix>-<k>.fifo`, the others are `<prefix>-<name>-<k>.fifo`; replaces MAILPOOL_SHARDS (see Streams) | one stream, `transactional`, of MAILPOOL_SHARDS shards
MAILPOOL_SUPPRESSION_CACHE_S | float | 5.0 | intake sender webhooks | seconds a sender trusts a suppression lookup
MAILPOOL_UNSUBSCRIBE_MAILTO | str | - | intake sender webhooks | a mailto address added to List-Unsubscribe
MAILPOOL_VISIBILITY_TIMEOUT | int | 30 | intake sender webhooks | seconds a received message stays hidden; extended while a send runs
MAILPOOL_WAIT_TIME | int | 20 | sender webhooks | long-poll seconds per receive (0-20; sender and webhooks)
MAILPOOL_WEBHOOKS_FILE | str | - | webhooks | JSON file of webhook endpoints (see Events and webhooks)
MAILPOOL_WEBHOOK_ALLOW_PRIVATE | bool | false | webhooks | `true`: that endpoint may be plain HTTP on a loopback or private address (local use, tests)
MAILPOOL_WEBHOOK_CONCURRENCY | int | 64 | webhooks | events in flight per webhooks process (16 requests at most per endpoint)
MAILPOOL_WEBHOOK_COOLDOWN | float | 30.0 | webhooks | seconds an endpoint's circuit stays open after 5 failures in a row
MAILPOOL_WEBHOOK_METRICS_HOST | str | 127.0.0.1 | webhooks | the dispatcher's `/metrics`, `/healthz`, `/readyz` address
MAILPOOL_WEBHOOK_METRICS_PORT | int | 9102 | webhooks | the dispatcher's `/metrics`, `/healthz`, `/readyz` port
MAILPOOL_WEBHOOK_SCHEDULE | str | '' | webhooks | seconds before each retry of a failed endpoint (about a day); then the events DLQ | 5,300,1800,7200,18000,36000,36000
MAILPOOL_WEBHOOK_SECRET | str secret | - | webhooks | that endpoint's Standard Webhooks secret (`whsec_…`); several, space-separated and the current one first, while it is rotated (each signs)
MAILPOOL_WEBHOOK_TIMEOUT | float | 10.0 | webhooks | seconds one webhook attempt may take
MAILPOOL_WEBHOOK_URL | str | - | webhooks | one endpoint for every event, from the environment alone (`mailpool dev` adds it beside its own receiver)
""")
DECLARED = {setting.name: setting for setting in SETTINGS}
