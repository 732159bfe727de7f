"""A recording provider that answers as scripted per recipient, so worker tests need no SMTP
server when SMTP is not what they test (httpx's ``MockTransport`` is the model)."""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.envelope import Envelope
from sender.providers.base import (
    Accepted,
    DelayError,
    PermanentError,
    Refusal,
    TransientError,
)

#: What the provider says for a recipient: "sent", "transient", "delay", or an SMTP-like
#: permanent refusal "550 5.1.1".
Answer = str


@dataclass
class FakeProvider:
    """Records every envelope it is given; ``answers`` by address (default: sent), each
    answer used ``times[address]`` times (default: always) before falling back to sent."""

    answers: Mapping[str, Answer] = field(default_factory=dict)
    times: dict[str, int] = field(default_factory=dict)
    delay_s: float = 0.0
    name: str = "fake"
    sent: list[Envelope] = field(default_factory=list)
    attempts: int = 0

    def _answer(self, address: str) -> Answer:
        answer = self.answers.get(address, "sent")
        left = self.times.get(address)
        if left is not None:
            if left <= 0:
                return "sent"
            self.times[address] = left - 1
        return answer

    async def send(self, envelope: Envelope) -> Accepted:
        """Answer for each recipient; raise for the whole message as SMTP would."""
        self.attempts += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        recipients = envelope.email.recipients
        answers = [self._answer(address) for address in recipients]
        if "delay" in answers:
            raise DelayError("fake_throttled")
        if "transient" in answers:
            raise TransientError("fake_451")
        refused = tuple(
            Refusal(position, int(answer.split()[0]), answer.split()[1])
            for position, answer in enumerate(answers)
            if answer not in ("sent",)
        )
        if refused and len(refused) == len(recipients):
            raise PermanentError("fake_5xx_all_recipients", refused)
        self.sent.append(envelope)
        return Accepted(refused)

    async def aclose(self) -> None:
        """Nothing to close."""
