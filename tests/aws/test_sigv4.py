"""The lean wire's SigV4 signatures are byte for byte botocore's ``SigV4Auth``'s."""

import datetime
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from aws.sigv4 import Signer, amz_date

_TOKEN_CHARS = st.characters(min_codepoint=33, max_codepoint=126)
_NAME = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda n: (
        n.lower() not in ("host", "x-amz-date", "authorization", "x-amz-security-token", "date")
        and not n.startswith("x-amz-content")
    )
)
_VALUE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
_SEGMENT = st.text("abcXYZ019-_.~%:@!$&'()*+,;= ", min_size=1, max_size=8)
_QUERY = st.lists(
    st.tuples(st.text("abkxyz-_.~%", min_size=1, max_size=5), st.text("abc12=%/", max_size=5)),
    max_size=4,
)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, object]:
    scheme = draw(st.sampled_from(["http", "https"]))
    host = draw(st.sampled_from(["sqs.eu-west-1.amazonaws.com", "127.0.0.1", "Email.Example"]))
    port = draw(st.sampled_from(["", ":80", ":443", ":4566", ":8080"]))
    path = "/" + "/".join(draw(st.lists(_SEGMENT, max_size=3)))
    query = "&".join(f"{k}={v}" for k, v in draw(_QUERY))
    url = f"{scheme}://{host}{port}{path}" + (f"?{query}" if query else "")
    headers = draw(st.dictionaries(_NAME, _VALUE, max_size=5))
    if draw(st.booleans()):
        headers["User-Agent"] = "mailpool/test"  # never signed
    return {
        "method": draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "post"])),
        "url": url,
        "headers": headers,
        "body": draw(st.binary(max_size=200)),
        "access_key": draw(
            st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=16, max_size=20)
        ),
        "secret_key": draw(st.text(_TOKEN_CHARS, min_size=20, max_size=40)),
        "token": draw(st.one_of(st.none(), st.text(_TOKEN_CHARS, min_size=1, max_size=60))),
        "region": draw(
            st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2", "us-gov-west-1"])
        ),
        "service": draw(st.sampled_from(["sqs", "dynamodb", "ses", "s3"])),
        "when": draw(
            st.datetimes(
                min_value=datetime.datetime(2020, 1, 1), max_value=datetime.datetime(2035, 12, 31)
            )
        ),
    }


def botocore_signed(r: dict[str, object]) -> dict[str, str]:
    request = AWSRequest(
        method=str(r["method"]), url=str(r["url"]), headers=dict(r["headers"]), data=r["body"]
    )
    credentials = Credentials(str(r["access_key"]), str(r["secret_key"]), r["token"])
    with mock.patch("botocore.auth.get_current_datetime", return_value=r["when"]):
        SigV4Auth(credentials, str(r["service"]), str(r["region"])).add_auth(request)
    return dict(request.headers.items())


def lean_signed(r: dict[str, object], signer: Signer | None = None) -> dict[str, str]:
    headers = dict(r["headers"])  # type: ignore[call-overload]
    signer = signer or Signer(str(r["region"]), str(r["service"]))
    when = r["when"].replace(tzinfo=datetime.UTC).timestamp()  # type: ignore[attr-defined]
    signer.sign(
        str(r["method"]),
        str(r["url"]),
        headers,
        r["body"],  # type: ignore[arg-type]
        access_key=str(r["access_key"]),
        secret_key=str(r["secret_key"]),
        token=r["token"],  # type: ignore[arg-type]
        date=amz_date(when),
    )
    return headers


@settings(max_examples=500, deadline=None)
@given(requests())
def test_a_signature_is_botocores_byte_for_byte(r: dict[str, object]) -> None:
    assert lean_signed(r) == botocore_signed(r)


def test_a_kept_signing_key_signs_like_a_fresh_one_across_days_and_secrets() -> None:
    signer = Signer("eu-west-1", "sqs")
    base: dict[str, object] = {
        "method": "POST",
        "url": "https://sqs.eu-west-1.amazonaws.com/",
        "headers": {"Content-Type": "application/x-amz-json-1.0"},
        "body": b"{}",
        "access_key": "AKIDEXAMPLE",
        "token": None,
        "region": "eu-west-1",
        "service": "sqs",
    }
    for day in (1, 1, 2, 3, 2):
        for secret in ("s1" * 10, "s2" * 10, "s1" * 10):
            r = {**base, "secret_key": secret, "when": datetime.datetime(2026, 5, day, 23, 59)}
            assert lean_signed(r, signer) == botocore_signed(r)
