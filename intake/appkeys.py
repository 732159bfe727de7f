"""The intake application's typed state (aiohttp ``AppKey``s), one key per thing, shared by
the handlers of ``intake.app`` and ``intake.state_api``."""

from aiohttp import web

from core.sealing import Keyring
from intake.accept import Acceptor
from intake.auth import Authenticator
from intake.config import IntakeConfig
from intake.quota import Quotas
from metrics.intake import IntakeMetrics
from pool.pool import QueuePool
from state.publisher import Publisher
from state.store import State
from state.tokens import Signer

ACCEPTOR = web.AppKey("acceptor", Acceptor)
POOL = web.AppKey("pool", QueuePool)
CONFIG = web.AppKey("config", IntakeConfig)
AUTH = web.AppKey("auth", Authenticator)
QUOTAS = web.AppKey("quotas", Quotas)
METRICS = web.AppKey("metrics", IntakeMetrics)
STATE = web.AppKey("state", State)
SIGNER = web.AppKey("signer", Signer)
KEYRING = web.AppKey("keyring", Keyring)
PUBLISHER = web.AppKey("publisher", Publisher)
#: One bucket per unsubscribe link: a link replayed in a loop is answered 429, not read.
UNSUBSCRIBES = web.AppKey("unsubscribes", Quotas)
