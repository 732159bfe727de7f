"""`mailpool dev` as a user runs it: a real process, a real curl-like POST, mail in Maildir."""

import asyncio
import base64
import email
import email.policy
import os
import pathlib
import re
import signal
import sys

import aiohttp
import orjson

from tests.support.waiting import until

EXAMPLE = {
    "from": "Ana Díaz <ana@example.test>",
    "to": "bob@example.test",
    "subject": "Hello from mailpool",
    "text": "It works.",
}
PDF = os.urandom(9 * 1024 * 1024)  # 9 MiB: about 12 MB as queued, far past a queue message
LARGE = {
    **EXAMPLE,
    "subject": "the report",
    "attachments": [{"filename": "report.pdf", "content": base64.b64encode(PDF).decode()}],
}


async def test_dev_stack_delivers_to_the_outbox_and_stops_cleanly(tmp_path: pathlib.Path) -> None:
    env = {**os.environ, "MAILPOOL_LOG_LEVEL": "WARNING"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mailpool", "dev",
        "--port", "0", "--metrics-port", "0", "--sqs-port", "0", "--smtp-port", "0",
        "--webhooks-metrics-port", "0",
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        banner = ""
        async with asyncio.timeout(30):
            while "Ctrl-C" not in banner:
                line = await process.stdout.readline()
                assert line, "mailpool dev exited before it was up"
                banner += line.decode()
        match = re.search(r"intake\s+(http://127\.0\.0\.1:\d+)", banner)
        assert match
        intake = match.group(1)
        assert "curl -sS -X POST " + intake + "/v1/emails" in banner
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{intake}/v1/emails", json=EXAMPLE) as response:
                assert response.status == 202
                message_id = (await response.json())["id"]
            for i in range(2):
                async with http.post(f"{intake}/v1/emails", json={**EXAMPLE, "text": f"{i}"}):
                    pass
            # Larger than a queue message: it travels through the engine's S3 bucket.
            async with http.post(f"{intake}/v1/emails", json=LARGE) as response:
                assert response.status == 202, await response.text()
                large_id = (await response.json())["id"]
        outbox = tmp_path / "var" / "outbox" / "new"
        await until(lambda: outbox.exists() and len(list(outbox.iterdir())) >= 1, 20)
        first = b"".join(p.read_bytes() for p in outbox.iterdir())
        assert message_id.encode() in first
        # Its email.sent arrives at the local receiver, signature verified.
        events = tmp_path / "var" / "events.jsonl"

        def sent_events() -> list[str]:
            if not events.exists():
                return []
            docs = [orjson.loads(line)["event"] for line in events.read_bytes().splitlines()]
            return [d["data"]["email_id"] for d in docs if d["type"] == "email.sent"]

        await until(lambda: message_id in sent_events(), 20)
        await until(lambda: large_id in sent_events(), 30)
        [large] = [
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in outbox.iterdir()
            if large_id.encode() in p.read_bytes()[:4096]
        ]
        [attached] = list(large.iter_attachments())  # type: ignore[attr-defined]
        assert attached.get_content() == PDF
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert "stopped; 4 message(s) delivered" in out.decode()
    assert "4 event(s) to var/events.jsonl" in out.decode()
    assert "cat var/events.jsonl" in banner
    assert len(list(outbox.iterdir())) == 4
