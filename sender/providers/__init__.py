"""Delivery providers, chosen by name and imported only when chosen.

``MAILPOOL_PROVIDERS`` is an ordered list (``smtp``, ``ses``, ``smtp,ses``, …). Each
provider may be capped at a rate (``MAILPOOL_SMTP_RATE``, ``MAILPOOL_SES_RATE``, messages/s
for this process); with several providers, sends fail over in order (see ``failover.py``).
"""

import os
from collections.abc import Mapping

from core.settings import SettingError, env_float, env_int, env_str
from sender.providers.base import Provider

PROVIDERS = ("smtp", "ses")


def _one(name: str, environ: Mapping[str, str]) -> Provider:
    provider: Provider
    if name == "smtp":
        from sender.providers.smtp import SmtpConfig, SmtpProvider

        provider = SmtpProvider(SmtpConfig.from_env(environ))
    elif name == "ses":
        from sender.providers.ses import SesConfig, SesProvider

        provider = SesProvider(SesConfig.from_env(environ))
    else:
        raise SettingError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")
    rate = env_float(environ, f"MAILPOOL_{name.upper()}_RATE", 0.0)
    if rate > 0:
        from sender.providers.ratelimit import RateLimited

        provider = RateLimited(provider, rate)
    return provider


def make_provider(names: str | None = None, environ: Mapping[str, str] = os.environ) -> Provider:
    """The provider(s) named by ``names`` (default ``MAILPOOL_PROVIDERS``, then ``smtp``)."""
    spec = names or env_str(environ, "MAILPOOL_PROVIDERS", "smtp")
    chosen = [n.strip() for n in spec.split(",") if n.strip()]
    if not chosen:
        raise SettingError("MAILPOOL_PROVIDERS names no provider")
    providers = [_one(name, environ) for name in chosen]
    if len(providers) == 1:
        return providers[0]
    from sender.providers.failover import Failover

    return Failover(
        providers,
        threshold=env_int(environ, "MAILPOOL_FAILOVER_THRESHOLD", 5),
        cooldown_s=env_float(environ, "MAILPOOL_FAILOVER_COOLDOWN", 30.0),
    )
