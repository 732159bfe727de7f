"""The one module that imports aiobotocore: an AWS client whose calls map their failures.

SQS (``pool/sqs.py``), S3 (``pool/blobs.py``), DynamoDB (``state/table.py``) and SES
(``sender/providers/ses.py``) each subclass ``AwsClient`` and say how a botocore failure
reads in their own terms. The hot calls (``aws.wire.HOT``) go over the lean wire unless
``MAILPOOL_AWS_WIRE=botocore``; the lean wire raises botocore's exceptions, so a failure
maps the same way on either.

``record_calls`` makes every client append what it calls (the process kind from ``ROLE``,
the IAM action, the kind of resource) to a file: the tests hold each IAM role of the
deployment template to exactly what its process was seen to call (``mailpool.iam``).
"""

import contextlib
import contextvars
import logging
import os
import types
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any, Self
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
)
from botocore.utils import get_environ_proxies

from aws.calls import call_of
from aws.errors import Misconfigured
from aws.wire import HOT, WIRES, LeanWire
from core.settings import env_str

#: The User-Agent of every AWS call: mailpool and the SDK underneath.
USER_AGENT = (
    f"mailpool/{version('mailpool')} aiobotocore/{version('aiobotocore')} "
    f"botocore/{version('botocore')}"
)
log = logging.getLogger(__name__)
#: What a call may fail with below the service: botocore's errors and socket errors.
CALL_ERRORS = (ClientError, BotoCoreError, OSError)


#: The process kind (``intake``, ``sender``, ``webhooks``) on whose behalf this context calls
#: AWS. A service sets it while it starts, so its tasks and request handlers inherit it.
ROLE: contextvars.ContextVar[str | None] = contextvars.ContextVar("mailpool_role", default=None)
_record: dict[str, Any] = {"path": None, "seen": set()}


@contextlib.contextmanager
def acting_as(role: str) -> Iterator[None]:
    """Attribute the AWS calls of this context (and of tasks it starts) to ``role``."""
    token = ROLE.set(role)
    try:
        yield
    finally:
        ROLE.reset(token)


def record_calls(path: str | None) -> None:
    """Append each distinct (role, IAM action, resource kind) this process calls to ``path``
    (None: stop recording)."""
    _record["path"] = path
    _record["seen"] = set()


def _on_call(params: dict[str, Any], model: Any, **_: Any) -> None:
    _note_call(model.service_model.service_name, model.name, params)


def _note_call(service: str, operation: str, params: dict[str, Any]) -> None:
    role = ROLE.get()
    path = _record["path"]
    if role is None or path is None:
        return
    line = "\t".join((role, *call_of(service, operation, params)))
    if line not in _record["seen"]:
        _record["seen"].add(line)
        # One short O_APPEND write per line: processes sharing the file never interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


def error_code(exc: Exception) -> tuple[str, int]:
    """(AWS error code, HTTP status) of a failed call; ("", 0) when it never got an answer."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return str(error.get("Code", "Unknown")), int(status)
    return "", 0


def error_message(exc: Exception) -> str:
    """The service's error message of a failed call (may name a resource, never content)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message", ""))
    return ""


def never_sent(exc: Exception) -> bool:
    """The call failed before its request could reach the service (no connection)."""
    return isinstance(exc, EndpointConnectionError | ConnectTimeoutError)


def is_setup_error(exc: Exception) -> bool:
    """No region, no credentials, malformed parameters: the client's setup, not the service."""
    return isinstance(exc, NoRegionError | NoCredentialsError | ParamValidationError)


class AwsClient:
    """One aiobotocore client for ``service``; subclasses map call failures with ``failure``."""

    service = ""

    def __init__(
        self,
        *,
        region: str | None,
        endpoint_url: str | None,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 30.0,
        max_connections: int = 32,
        attempts: int = 1,
        path_style: bool = False,
        wire: str | None = None,
    ) -> None:
        self._region = region
        self._endpoint_url = endpoint_url
        self.wire = wire or env_str(os.environ, "MAILPOOL_AWS_WIRE", "lean")
        if self.wire not in WIRES:
            raise Misconfigured(
                f"MAILPOOL_AWS_WIRE must be one of {', '.join(WIRES)}, got {self.wire!r}"
            )
        self._timeouts = (connect_timeout_s, read_timeout_s, max_connections)
        self._lean: LeanWire | None = None
        options: dict[str, Any] = {"s3": {"addressing_style": "path"}} if path_style else {}
        self._config = AioConfig(
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            max_pool_connections=max_connections,
            retries={"total_max_attempts": attempts, "mode": "standard"},
            # A fixed User-Agent: botocore otherwise rebuilds its own for every request,
            # a quarter of a call's CPU (profiled under load).
            user_agent=USER_AGENT,
            # mailpool builds every request itself; the service still validates it.
            parameter_validation=False,
            **options,
        )
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def __aenter__(self) -> Self:
        session = get_session()
        try:
            self._client = await self._stack.enter_async_context(
                session.create_client(
                    self.service,
                    region_name=self._region,
                    endpoint_url=self._endpoint_url,
                    config=self._config,
                )
            )
        except (BotoCoreError, ValueError) as exc:
            raise Misconfigured(
                f"cannot create the {self.service} client: {type(exc).__name__}"
            ) from exc
        if _record["path"] is not None:
            self._client.meta.events.register("before-parameter-build", _on_call)
        if self.wire == "lean" and self.service in HOT:
            await self._open_lean(session)
        return self

    async def _open_lean(self, session: Any) -> None:
        """The lean wire on the endpoint, region and credentials botocore resolved (not
        through an HTTP proxy: those calls stay on botocore, which knows proxies)."""
        endpoint = self._client.meta.endpoint_url
        scheme = urlsplit(endpoint).scheme
        if (self._client.meta.config.proxies or {}).get(scheme) or get_environ_proxies(
            endpoint
        ).get(scheme):
            log.info("%s goes through a proxy: its hot calls stay on botocore", self.service)
            return
        connect_s, read_s, connections = self._timeouts
        self._lean = await LeanWire.beside(
            self._client,
            session,
            user_agent=USER_AGENT,
            connect_timeout_s=connect_s,
            read_timeout_s=read_s,
            max_connections=connections,
        )
        if self._lean is not None:
            self._stack.push_async_callback(self._lean.close)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        await self._stack.aclose()
        self._client = None
        self._lean = None

    def failure(self, action: str, exc: Exception) -> Exception:
        """The exception a failed call of ``action`` raises instead of ``exc``."""
        raise NotImplementedError

    async def _call(self, action: str, **kwargs: Any) -> dict[str, Any]:
        lean = self._lean
        try:
            if lean is not None and action in lean.operations:
                if _record["path"] is not None:
                    _note_call(self.service, lean.operations[action].name, kwargs)
                return await lean.call(action, kwargs)
            result: dict[str, Any] = await getattr(self._client, action)(**kwargs)
        except CALL_ERRORS as exc:
            raise self.failure(action, exc) from exc
        return result
