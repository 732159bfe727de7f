"""Errors an AWS call raises; ``retriable`` says whether the same call may succeed later.

AwsError                      the service did not take the request
├── Unavailable (retriable)   connection refused, 5xx, an answer that cannot be read, deadline
│   ├── Throttled             the service refused for rate (ThrottlingException, RequestThrottled)
│   ├── NoAnswer              the request may have reached the service, but no answer came back
│   ├── Overloaded            refused before any work: it could not be done before its deadline
│   ├── Cancelled             an all-or-nothing call failed for another entry's sake: go again now
│   └── PoolClosed            the pool is shutting down (or its flusher died) and takes no work
├── Rejected                  the service refused the request itself (invalid, too large)
│   └── TooLarge              past the queue's size limit, and no S3 bucket to carry it
├── QueueMissing              a queue of the pool does not exist
└── Misconfigured             no region, no credentials, a malformed endpoint
"""


class AwsError(Exception):
    """Base of every AWS call error; ``code`` is the service's error code where it gave one."""

    retriable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class Unavailable(AwsError):
    """The service could not be reached or failed on its side; try again later."""

    retriable = True


class Throttled(Unavailable):
    """The service refused the call for rate; back off and try again."""


class NoAnswer(Unavailable):
    """The call was sent but no answer came (timeout, connection lost mid-call): the
    request may or may not have taken effect. Repeating it with the same deduplication ID
    is safe; until then its outcome is in doubt."""


class Overloaded(Unavailable):
    """Refused before any work: the backlog ahead of it could not be cleared in time."""


class Cancelled(Unavailable):
    """Fine itself, but cancelled with the rest of an all-or-nothing call (a transaction)
    because another entry of it failed: it goes again at once, holding nobody back."""


class PoolClosed(Unavailable):
    """The pool is closing and takes no new work."""


class Rejected(AwsError):
    """The service refused the request as invalid; retrying the same request fails again."""


class TooLarge(Rejected):
    """A message past the queue's size limit, with no S3 bucket configured to carry it."""


class QueueMissing(AwsError):
    """A queue of the pool does not exist (not provisioned, or deleted)."""


class Misconfigured(AwsError):
    """The client cannot be set up: missing region or credentials, or a bad endpoint."""
