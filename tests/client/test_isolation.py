"""The client is a distribution of its own: it imports nothing of the server."""

import pathlib
import shutil
import subprocess
import sys

import pytest

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


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_fresh_environment_with_the_client_wheel_alone_runs_the_load_tester(
    tmp_path: pathlib.Path,
) -> None:
    source = pathlib.Path(__file__).resolve().parents[2] / "clients" / "python"
    client = tmp_path / "client"  # built from a copy: the build leaves nothing in the tree
    shutil.copytree(source, client, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels),
         str(client)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [wheel] = wheels.glob("mailpool_client-*.whl")
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(fresh)], check=True, timeout=120)
    subprocess.run(
        [fresh / "bin" / "python", "-m", "pip", "install", "--quiet", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    done = subprocess.run(
        [fresh / "bin" / "mailpool-loadtest", "--help"], capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--senders" in done.stdout
    assert "send lag" in done.stdout
