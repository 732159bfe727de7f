"""The peer: a Celery app on kombu's SQS transport whose task sends one email by smtplib.

Started by ``benchmarks.peer`` as ``celery -A benchmarks.peer_app worker``; configured from
the environment it sets (PEER_*). The task is written as a Celery user writes it: the stdlib's
``EmailMessage`` with the same headers and body mailpool sends (From, To, Subject, Date,
Message-ID), and ``smtplib``, but over one persistent SMTP connection per worker thread, the
best a Celery task can do (a connection per email costs three more round trips).
"""

import os
import pathlib
import smtplib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from celery import Celery
from celery.signals import worker_ready

from benchmarks.load import EMAIL
from intake.ids import new_id

QUEUE = os.environ.get("PEER_QUEUE", "peer.fifo")

app = Celery("peer", broker=os.environ.get("PEER_BROKER", "sqs://"))
app.conf.update(
    broker_transport_options={
        "region": "us-east-1",
        "is_secure": False,
        "wait_time_seconds": 1,
        "polling_interval": 0,
        "visibility_timeout": 300,
        "predefined_queues": {
            QUEUE: {
                "url": os.environ.get("PEER_QUEUE_URL", ""),
                "access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", "bench"),
                "secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", "bench"),
            }
        },
    },
    broker_connection_retry_on_startup=True,
    task_default_queue=QUEUE,
    task_ignore_result=True,
    # Deleted from SQS only once sent, as mailpool does: the same no-loss guarantee.
    task_acks_late=os.environ.get("PEER_ACKS", "late") == "late",
    worker_prefetch_multiplier=int(os.environ.get("PEER_PREFETCH", "4")),
    worker_hijack_root_logger=False,
)

_local = threading.local()


def _smtp() -> smtplib.SMTP:
    client: smtplib.SMTP | None = getattr(_local, "client", None)
    if client is None:
        client = smtplib.SMTP("127.0.0.1", int(os.environ["PEER_SMTP_PORT"]))
        _local.client = client
    return client


@app.task(name="send_email")
def send_email(message_id: str, email: dict[str, Any]) -> None:
    """Render and send one email over this thread's SMTP connection."""
    message = EmailMessage()
    message["From"] = email["from"]
    message["To"] = email["to"]
    message["Subject"] = email["subject"]
    message["Date"] = formatdate()
    message["Message-ID"] = f"<{message_id}@example.test>"
    message.set_content(email["text"])
    try:
        _smtp().send_message(message)
    except smtplib.SMTPServerDisconnected:
        _local.client = None
        _smtp().send_message(message)


@worker_ready.connect
def _ready(**_: Any) -> None:
    ready = os.environ.get("PEER_READY_FILE")
    if ready:
        pathlib.Path(ready).write_text("ready")


def produce(count: int, threads: int) -> None:
    """Enqueue ``count`` emails (the load generator's, as mailpool gets them) from
    ``threads`` threads, each its own FIFO group (as mailpool does for an email without a
    group); prints the epoch second of the first enqueue."""
    fifo = QUEUE.endswith(".fifo")

    def one(_: int) -> None:
        message_id = new_id()
        if fifo:
            send_email.apply_async(
                (message_id, EMAIL), MessageGroupId=message_id, MessageDeduplicationId=message_id
            )
        else:
            send_email.apply_async((message_id, EMAIL))

    with app.connection_for_write() as conn:
        conn.ensure_connection()
    print(f"started {time.time():.6f}", flush=True)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    print("done", flush=True)


if __name__ == "__main__":
    produce(int(sys.argv[1]), int(sys.argv[2]))
