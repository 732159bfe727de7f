"""Delivery providers, chosen by name and imported only when chosen.

``MAILPOOL_PROVIDERS`` is an ordered list (``smtp``, ``ses``, ``smtp,ses``, …). Each
provider may be capped at a rate (``MAILPOOL_SMTP_RATE``, ``MAILPOOL_SES_RATE``, messages/s
for this process), and each stream at its own rate ahead of them (``MAILPOOL_STREAM_RATES``,
see ``ratelimit.py``); with several providers, sends fail over in order (see ``failover.py``).
"""

import dataclasses
import os
from collections.abc import Mapping

from core.settings import SettingError, env_float, env_int, env_str
from pool.streams import Stream, check_names
from sender.providers.base import Provider

PROVIDERS = ("smtp", "ses")


def _one(name: str, environ: Mapping[str, str], streams: tuple[Stream, ...]) -> Provider:
    provider: Provider
    if name == "smtp":
        from sender.providers.smtp import SmtpConfig, SmtpProvider

        provider = SmtpProvider(SmtpConfig.from_env(environ))
    elif name == "ses":
        from sender.providers.ses import SesConfig, SesProvider

        config = SesConfig.from_env(environ)
        if streams:
            sets = (stream for stream, _ in config.configuration_sets)
            check_names(sets, streams, "MAILPOOL_SES_CONFIGURATION_SETS")
            config = dataclasses.replace(config, first_stream=streams[0].name)
        provider = SesProvider(config)
    else:
        raise SettingError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")
    rate = env_float(environ, f"MAILPOOL_{name.upper()}_RATE", 0.0)
    if rate > 0:
        from sender.providers.ratelimit import RateLimited

        provider = RateLimited(provider, rate)
    return provider


def make_provider(
    names: str | None = None,
    environ: Mapping[str, str] = os.environ,
    streams: tuple[Stream, ...] = (),
) -> Provider:
    """The provider(s) named by ``names`` (default ``MAILPOOL_PROVIDERS``, then ``smtp``);
    per-stream settings are checked against the pool's ``streams`` when given."""
    spec = names or env_str(environ, "MAILPOOL_PROVIDERS", "smtp")
    chosen = [n.strip() for n in spec.split(",") if n.strip()]
    if not chosen:
        raise SettingError("MAILPOOL_PROVIDERS names no provider")
    providers = [_one(name, environ, streams) for name in chosen]
    if len(providers) == 1:
        return providers[0]
    from sender.providers.failover import Failover

    return Failover(
        providers,
        threshold=env_int(environ, "MAILPOOL_FAILOVER_THRESHOLD", 5),
        cooldown_s=env_float(environ, "MAILPOOL_FAILOVER_COOLDOWN", 30.0),
    )
