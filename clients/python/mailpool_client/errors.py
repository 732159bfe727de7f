"""What a call can fail with: the API's own errors, typed, and the ones that never got one.

MailpoolError
├── ApiError              the API answered with an error: ``status``, ``code``, ``field``
│   ├── InvalidRequest      4xx the same request will always get (400, 404, 409, 413, 422)
│   ├── RateLimited         429: the key's quota is spent (``retry_after``)
│   └── Unavailable         503: not accepted (``code``: unavailable, overloaded, in_doubt)
├── ConnectionFailed      no answer at all (connection refused or lost, timeout)
└── RetriesExhausted      the time budget ran out; ``last`` is the last failure
"""


class MailpoolError(Exception):
    """Base of every error the client raises."""


class ApiError(MailpoolError):
    """The API answered with an error."""

    #: Whether the same request may succeed later.
    retriable = False

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        where = f" ({field})" if field else ""
        super().__init__(f"{status} {code}: {message}{where}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after


class InvalidRequest(ApiError):
    """The request itself is refused; sending it again fails again."""


class RateLimited(ApiError):
    """429: the API key's quota is spent for now; ``retry_after`` says for how long."""

    retriable = True


class Unavailable(ApiError):
    """503: not accepted. ``in_doubt``: it may have been stored; a retry with the same
    Idempotency-Key is deduplicated either way."""

    retriable = True


class ConnectionFailed(MailpoolError):
    """No answer: the connection failed or was lost, or the answer did not come in time.
    The request may have reached the API, so a retry must carry the same Idempotency-Key."""

    retriable = True


class RetriesExhausted(MailpoolError):
    """Every try failed retriably until the time budget ran out."""

    def __init__(self, last: MailpoolError, tries: int) -> None:
        super().__init__(f"gave up after {tries} tries: {last}")
        self.last = last
        self.tries = tries


def from_answer(status: int, body: object, retry_after: str | None) -> ApiError:
    """The error an answer with ``status`` and JSON ``body`` stands for."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or f"http_{status}")
    message = str(error.get("message") or "")
    field = error.get("field")
    after = _seconds(retry_after)
    kind: type[ApiError] = InvalidRequest
    if status == 429:
        kind = RateLimited
    elif status >= 500:
        kind = Unavailable
    return kind(status, code, message, str(field) if field is not None else None, after)


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
