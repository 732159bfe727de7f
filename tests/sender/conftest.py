"""Fixtures of the sender's tests: ``worker``, the face of the delivery code a test runs
through (the sender, or the Lambda worker under a local event source)."""

from tests.support import workers

worker = workers.worker
