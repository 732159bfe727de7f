"""Delivery providers, chosen by name and imported only when chosen."""

import os
from collections.abc import Mapping

from sender.providers.base import Provider

PROVIDERS = ("smtp",)


def make_provider(name: str, environ: Mapping[str, str] = os.environ) -> Provider:
    """The provider called ``name``, configured from ``environ``."""
    if name == "smtp":
        from sender.providers.smtp import SmtpConfig, SmtpProvider

        return SmtpProvider(SmtpConfig.from_env(environ))
    raise ValueError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")
