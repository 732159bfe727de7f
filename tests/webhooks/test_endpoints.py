"""Endpoint configuration and where webhooks may go."""

import pathlib
import socket

import orjson
import pytest

from core.settings import SettingError
from webhooks import endpoints
from webhooks.safety import GuardedResolver, RefusedAddress, forbidden, literal_refused
from webhooks.signing import new_secret, secret_key

SECRET = new_secret()


def write(tmp_path: pathlib.Path, *entries: dict[str, object]) -> pathlib.Path:
    path = tmp_path / "webhooks.json"
    path.write_bytes(orjson.dumps({"endpoints": list(entries)}))
    return path


def test_a_file_lists_endpoints_with_their_filters(tmp_path: pathlib.Path) -> None:
    path = write(
        tmp_path,
        {"name": "crm", "url": "https://hooks.example.test/a", "secret": SECRET,
         "events": ["email.bounced"], "keys": ["shop"]},
        {"name": "all", "url": "https://hooks.example.test/b", "secret": SECRET},
    )  # fmt: skip
    crm, every = endpoints.load(path)
    assert crm.wants("email.bounced", "shop")
    assert not crm.wants("email.sent", "shop")
    assert not crm.wants("email.bounced", "other")
    assert every.wants("email.sent", None)


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"name": "x", "url": "http://hooks.example.test/", "secret": SECRET}, "allow_http"),
        ({"name": "x", "url": "ftp://hooks.example.test/", "secret": SECRET}, "http"),
        ({"name": "x", "url": "https://hooks.example.test/", "secret": "s3cr3t"}, "whsec_"),
        ({"name": "x", "url": "https://h.example.test/", "secret": SECRET, "events": ["x"]},
         "events"),
        ({"name": "bad name", "url": "https://h.example.test/", "secret": SECRET}, "name"),
        ({"name": "x", "url": "https://h.example.test/", "secret": SECRET, "colour": 1},
         "unknown field"),
    ],
)  # fmt: skip
def test_a_bad_endpoint_is_refused_naming_what_is_wrong(
    tmp_path: pathlib.Path, entry: dict[str, object], says: str
) -> None:
    with pytest.raises(SettingError, match=says):
        endpoints.load(write(tmp_path, entry))


def test_the_simplest_setup_comes_from_the_environment() -> None:
    [local] = endpoints.from_env(
        {"MAILPOOL_WEBHOOK_URL": "http://127.0.0.1:9/hook", "MAILPOOL_WEBHOOK_SECRET": SECRET,
         "MAILPOOL_WEBHOOK_ALLOW_PRIVATE": "true"}
    )  # fmt: skip
    assert (local.name, local.allow_http, local.internal) == ("default", True, True)
    with pytest.raises(SettingError, match="allow_http"):
        endpoints.from_env(
            {"MAILPOOL_WEBHOOK_URL": "http://127.0.0.1:9/hook", "MAILPOOL_WEBHOOK_SECRET": SECRET}
        )


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "::1",
     "fd00:ec2::254", "::ffff:127.0.0.1", "0.0.0.0", "100.100.100.200"],
)  # fmt: skip
def test_internal_addresses_are_forbidden(address: str) -> None:
    assert forbidden(address)


def test_public_addresses_are_allowed_and_literals_are_checked() -> None:
    assert not forbidden("93.184.216.34")
    assert literal_refused("https://169.254.169.254/latest/meta-data")
    assert not literal_refused("https://hooks.example.test/")


async def test_the_guarded_resolver_refuses_a_name_that_resolves_inside() -> None:
    resolver = GuardedResolver()
    try:
        with pytest.raises(RefusedAddress):
            await resolver.resolve("localhost", 443, socket.AF_INET)
    finally:
        await resolver.close()


def test_an_endpoint_secret_being_rotated_keeps_the_old_key_to_sign_with_too() -> None:
    new, old = new_secret(), new_secret()
    [endpoint] = endpoints.from_env(
        {
            "MAILPOOL_WEBHOOK_URL": "https://hooks.example.test/x",
            "MAILPOOL_WEBHOOK_SECRET": f"{new} {old}",
        }
    )
    assert endpoint.key == secret_key(new)
    assert endpoint.previous == (secret_key(old),)
