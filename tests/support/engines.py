"""Queue engines for tests: localsqs on a thread of its own, like moto's ThreadedMotoServer."""

import pathlib

from localsqs.server import LocalSqs, LocalSqsConfig
from tests.support.background import Background


class ThreadedLocalSqs:
    """Runs localsqs on its own event loop in a thread, for synchronous fixtures."""

    def __init__(
        self, data_dir: pathlib.Path, throttle: float = 0.0, duplicates: float = 0.0
    ) -> None:
        self.config = LocalSqsConfig(port=0, data_dir=data_dir, durability="os", throttle=throttle,
                                     duplicates=duplicates)  # fmt: skip
        self._background = Background(lambda: LocalSqs(self.config))
        self.url = ""

    def start(self) -> str:
        """Start serving; returns the endpoint URL."""
        self.url = self._background.start().url
        return self.url

    def stop(self) -> None:
        """Stop serving and close the database."""
        self._background.stop()
