"""The client is a distribution of its own: it imports nothing of the server."""

import subprocess
import sys

SERVER = ("aws", "core", "intake", "localsqs", "mailpool", "metrics", "pool", "sender", "state")


def test_the_client_imports_nothing_of_the_server() -> None:
    probe = (
        "import sys, mailpool_client\n"
        f"server = {SERVER!r} + ('webhooks',)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(server)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
