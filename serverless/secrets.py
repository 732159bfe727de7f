"""Secrets a Lambda function reads at its cold start, from Secrets Manager.

A Lambda function has no ECS ``Secrets``: putting a secret in its environment would show it
in the console and in ``GetFunctionConfiguration``. The template gives the function the
secret's ARN instead (``MAILPOOL_STATE_SECRET_ARN``), and the function's role may read
exactly that secret; the first invocation reads it into the process's own environment,
where the settings readers find it.
"""

import os
from collections.abc import MutableMapping

from aws.client import AwsClient, error_code
from aws.errors import AwsError, Misconfigured, Rejected, Unavailable
from core.settings import env_opt

#: Secret setting → the setting naming the secret's ARN.
BY_ARN = {"MAILPOOL_STATE_SECRET": "MAILPOOL_STATE_SECRET_ARN"}


class SecretsClient(AwsClient):
    """Reads secret values."""

    service = "secretsmanager"

    def failure(self, action: str, exc: Exception) -> AwsError:
        code, status = error_code(exc)
        if not code or status >= 500:
            return Unavailable(f"{action}: {code or type(exc).__name__}", code=code or None)
        return Rejected(f"{action}: {code}", code=code)

    async def value(self, arn: str) -> str:
        """The secret's current string value."""
        answer = await self._call("get_secret_value", SecretId=arn)
        secret = answer.get("SecretString")
        if not isinstance(secret, str):
            raise Misconfigured("the secret has no string value")
        return secret


async def read_secrets(environ: MutableMapping[str, str] = os.environ) -> int:
    """Put each secret named by ARN (and not set itself) into ``environ``; how many."""
    wanted = {
        name: arn
        for name, setting in BY_ARN.items()
        if not environ.get(name) and (arn := env_opt(environ, setting))
    }
    if not wanted:
        return 0
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    async with SecretsClient(region=region, endpoint_url=None, attempts=3) as client:
        for name, arn in wanted.items():
            environ[name] = await client.value(arn)
    return len(wanted)
