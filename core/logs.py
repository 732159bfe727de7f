"""Structured logging: one JSON object per line, ids only, never recipients or content.

Only whitelisted ``extra`` keys are written, exception messages are dropped (an SMTP
error's text can name a recipient; the exception type and traceback frames remain), and
the loggers of libraries that log request bodies at DEBUG (botocore, aiosmtplib, …) are
held at WARNING whatever level mailpool itself logs at.
"""

import logging
import sys
import traceback
from typing import Any, TextIO

import orjson

#: The only ``extra`` fields a record may carry into the output.
SAFE_FIELDS = (
    "id",
    "sqs_id",
    "shard",
    "outcome",
    "reason",
    "attempt",
    "delay",
    "count",
    "codes",
    "status",
    "error",
    "code",
    "provider",
    "route",
    "url",
    "address",
    "component",
    "action",
    "path",
)
NOISY_LIBRARIES = (
    "botocore",
    "aiobotocore",
    "boto3",
    "urllib3",
    "aiosmtplib",
    "mail.log",
    "mail.debug",
    "aiosmtpd",
    "moto",
    "werkzeug",
    "aiohttp.access",
)


class JsonFormatter(logging.Formatter):
    """Renders a record as one JSON line with whitelisted fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in SAFE_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                doc[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, tb = record.exc_info
            # The exception's message is left out on purpose: it may hold an address.
            doc["exception"] = exc_type.__name__
            doc["traceback"] = "".join(traceback.format_tb(tb)) + _inner_frames(exc)
        return orjson.dumps(doc, default=str).decode()


def _inner_frames(exc: BaseException | None, depth: int = 1) -> str:
    """The frames of an exception group's members (types and frames, no messages)."""
    if not isinstance(exc, BaseExceptionGroup):
        return ""
    text = ""
    for number, inner in enumerate(exc.exceptions, 1):
        text += f"{'  ' * depth}[{number}] {type(inner).__name__}:\n"
        text += "".join(traceback.format_tb(inner.__traceback__))
        text += _inner_frames(inner, depth + 1)
    return text


def setup(level: str = "INFO", stream: TextIO | None = None) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) as JSON lines; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old.formatter, JsonFormatter):  # ours, from an earlier setup()
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet_libraries()
    return handler


def quiet_libraries() -> None:
    """Hold libraries that log request and message bodies at WARNING."""
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
