"""API keys: bearer keys checked by digest, per-key idempotency, no exposure without keys."""

import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from core.settings import SettingError
from intake.app import create_app
from intake.auth import Authenticator, check_exposure, new_key
from intake.config import IntakeConfig
from intake.errors import ApiError
from mailpool.cli import main
from metrics.intake import IntakeMetrics
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.pool import QueuePool
from sender.providers.ses import TAG_VALUE
from tests.intake.test_api import EMAIL
from tests.support.queues import count

ALICE, ALICE_LINE = new_key("alice")
BOB, BOB_LINE = new_key("bob")


@pytest.fixture
def keys_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "keys"
    path.write_text(f"# mailpool API keys\n{ALICE_LINE}\n\n{BOB_LINE}\n")
    return path


@pytest.fixture
async def api(
    provisioned: PoolConfig, keys_file: pathlib.Path
) -> AsyncIterator[TestClient[Any, Any]]:
    registry = CollectorRegistry()
    auth = Authenticator.from_env({"MAILPOOL_API_KEYS_FILE": str(keys_file)})
    app = create_app(
        IntakeConfig(), QueuePool(provisioned, PoolMetrics(registry)), IntakeMetrics(registry),
        registry, auth,
    )  # fmt: skip
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


async def post(api: TestClient[Any, Any], **headers: str) -> tuple[int, Any]:
    response = await api.post("/v1/emails", json=EMAIL, headers=headers)
    return response.status, await response.json()


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer mp_wrong", f"Basic {ALICE}", "Bearer", f"bearer  {ALICE}x"],
    ids=["none", "wrong-key", "basic-scheme", "no-key", "key-plus-one"],
)
async def test_requests_without_a_valid_key_get_401_and_enqueue_nothing(
    api: TestClient[Any, Any], provisioned: PoolConfig, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    status, body = await post(api, **headers)
    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert body["error"]["field"] is None
    assert "API key" in body["error"]["message"]
    assert await count(provisioned) == 0


async def test_a_valid_key_is_accepted_and_probes_stay_open(api: TestClient[Any, Any]) -> None:
    assert (await post(api, Authorization=f"Bearer {ALICE}"))[0] == 202
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert (await api.get(path)).status == 200, path
    document = await (await api.get("/openapi.json")).json()
    assert document["paths"]["/v1/emails"]["post"]["security"] == [{"bearer": []}]


async def test_idempotency_keys_are_scoped_per_api_key(api: TestClient[Any, Any]) -> None:
    same = {"Idempotency-Key": "order-1"}
    alice = await post(api, Authorization=f"Bearer {ALICE}", **same)
    alice_again = await post(api, Authorization=f"Bearer {ALICE}", **same)
    bob = await post(api, Authorization=f"Bearer {BOB}", **same)
    assert alice[1]["id"] == alice_again[1]["id"] != bob[1]["id"]


def test_keys_from_the_environment_and_a_malformed_file(tmp_path: pathlib.Path) -> None:
    auth = Authenticator.from_env({"MAILPOOL_API_KEYS": f"{ALICE}, {BOB}"})
    assert auth.enabled
    assert auth.identify(f"Bearer {BOB}").startswith("key-")
    broken = tmp_path / "broken"
    broken.write_text("alice:not-hex\n")
    with pytest.raises(SettingError, match=r"broken:1"):
        Authenticator.from_env({"MAILPOOL_API_KEYS_FILE": str(broken)})
    assert not Authenticator.from_env({"MAILPOOL_API_KEYS": ALICE, "MAILPOOL_AUTH": "off"}).enabled


def test_digests_from_a_secret_store_admit_their_keys_beside_the_others() -> None:
    # What ECS hands a task from Secrets Manager: the keys file's lines, comma-separated.
    auth = Authenticator.from_env(
        {"MAILPOOL_API_KEY_DIGESTS": f"{ALICE_LINE},{BOB_LINE}", "MAILPOOL_API_KEYS": "mp_x"}
    )
    assert auth.identify(f"Bearer {ALICE}") == "alice"
    assert auth.identify(f"Bearer {BOB}") == "bob"  # an old and a new key, during a rotation
    assert auth.identify("Bearer mp_x").startswith("key-")
    with pytest.raises(ApiError):
        auth.identify("Bearer mp_unknown")
    for broken in ("alice:not-hex", "alice:abcd"):  # not a SHA-256 digest
        with pytest.raises(SettingError, match="MAILPOOL_API_KEY_DIGESTS:1"):
            Authenticator.from_env({"MAILPOOL_API_KEY_DIGESTS": broken})


def test_without_keys_only_loopback_is_served() -> None:
    open_auth = Authenticator([])
    for host in ("127.0.0.1", "::1", "localhost"):
        check_exposure(open_auth, host, {})
    with pytest.raises(SettingError, match=r"refusing to listen on 0\.0\.0\.0 without API keys"):
        check_exposure(open_auth, "0.0.0.0", {})
    check_exposure(open_auth, "0.0.0.0", {"MAILPOOL_AUTH": "off"})
    check_exposure(Authenticator.from_env({"MAILPOOL_API_KEYS": ALICE}), "0.0.0.0", {})


def test_the_cli_refuses_an_exposed_intake_without_keys(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAILPOOL_API_KEYS", raising=False)
    assert main(["intake", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "MAILPOOL_API_KEYS" in capsys.readouterr().err


def test_keys_new_prints_a_key_and_its_file_line(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    assert main(["keys", "new", "--name", "shop"]) == 0
    out = capsys.readouterr().out
    key = out.split("key:", 1)[1].split()[0]
    line = out.split("line:", 1)[1].split()[0]
    assert line.startswith("shop:")
    path = tmp_path / "keys"
    path.write_text(line + "\n")
    assert (
        Authenticator.from_env({"MAILPOOL_API_KEYS_FILE": str(path)}).identify(f"Bearer {key}")
        == "shop"
    )


def test_keys_new_needs_a_name_that_can_be_a_scope(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:  # argparse: --name is required
        main(["keys", "new"])
    assert exited.value.code == 2
    assert "--name" in capsys.readouterr().err
    for name in ("shop.eu", "a b", "ops@example", "a/b", "", "x" * 65):
        assert main(["keys", "new", "--name", name]) == 2
        assert "a key's name must be" in capsys.readouterr().err


def test_key_names_that_cannot_travel_as_a_scope_stop_intake_at_start(
    tmp_path: pathlib.Path,
) -> None:
    _, dotted = new_key("shop.eu")  # the name would make SES refuse every email of the key
    path = tmp_path / "keys"
    path.write_text(f"{ALICE_LINE}\n{dotted}\n")
    with pytest.raises(SettingError, match=r"keys:2: a key's name must be"):
        Authenticator.from_env({"MAILPOOL_API_KEYS_FILE": str(path)})
    with pytest.raises(SettingError, match="MAILPOOL_API_KEY_DIGESTS:1"):
        Authenticator.from_env({"MAILPOOL_API_KEY_DIGESTS": dotted.replace("shop.eu", "a b")})


def test_distinct_keys_never_share_a_scope_by_accident(tmp_path: pathlib.Path) -> None:
    first, second = new_key("x"), new_key("x")
    path = tmp_path / "keys"
    # Lines without a name, in the file and in the digests a secret store hands over.
    path.write_text(first[1].removeprefix("x") + "\n")
    auth = Authenticator.from_env(
        {
            "MAILPOOL_API_KEYS_FILE": str(path),
            "MAILPOOL_API_KEY_DIGESTS": second[1].removeprefix("x"),
            "MAILPOOL_API_KEYS": f"{ALICE}",
        }
    )
    names = {auth.identify(f"Bearer {key}") for key in (first[0], second[0], ALICE)}
    assert len(names) == 3
    assert auth.shared_names() == {}
    # A rotation: the new key takes the old one's name, on purpose; it is named at start.
    rotated = Authenticator.from_env(
        {"MAILPOOL_API_KEY_DIGESTS": f"{ALICE_LINE},{new_key('alice')[1]},{BOB_LINE}"}
    )
    assert rotated.shared_names() == {"alice": 2}


def test_every_key_name_is_a_tag_value_ses_accepts() -> None:
    for name in ("shop", "shop_eu", "Shop-2", "x" * 64):
        assert TAG_VALUE.fullmatch(new_key(name)[1].rpartition(":")[0])
    assert not TAG_VALUE.fullmatch("shop.eu")
