"""Secrets never reach a log line: real SDK calls with DEBUG logging on, the output grepped.

Each kind of secret an SDK logs (botocore's ``X-Amz-Security-Token`` and ``Authorization``
headers and the STS answer's credentials, urllib3's SAS ``sig=``, httpx's ``user:pass@``
and ``?sig=``) is produced by a real call, every log record of the process is captured,
and the test checks that no secret value is in it while the rest of the line still is.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from sygnify import redaction
from sygnify.connectors import CloudDataConnector
from sygnify.ml import RealTimeML
from sygnify.redaction import MASK, RedactingFilter, hold_secret, install, installed, redact
from tests.connectors._emulated import emulator_fixtures
from tests.emulators.moto import MotoServer, moto_server


def _fresh(prefix: str) -> str:
    """A secret value no other test holds (so only the patterns can mask it)."""
    return f"{prefix}{uuid.uuid4().hex}"


@contextmanager
def debug_log() -> Iterator[io.StringIO]:
    """Every record of every logger, at DEBUG, formatted with tracebacks into one string."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


# -- what is masked, and what is kept ---------------------------------------------------------

CASES = [
    ("GET https://user:pa55@h.example/p 200", "https://user:***@h.example/p 200"),
    ("postgresql://app:s3cr%40t@db:5432/sales", "postgresql://app:***@db:5432/sales"),
    ("/c/b?sv=2024-05-04&se=2030&sp=r&sig=Ab%2Bc%3D", "/c/b?sv=2024-05-04&se=2030&sp=r&sig=***"),
    ("/o?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F1&X-Amz-Signature=ab12", "X-Amz-Credential=***"),
    ("/o?X-Amz-Security-Token=FwoG&x=1", "/o?X-Amz-Security-Token=***&x=1"),
    ("/score?api-version=2&signature=abc", "/score?api-version=2&signature=***"),
    ("/cb?code=4%2F0Ad&state=xyz", "/cb?code=***&state=xyz"),
    ("/v1?key=AIzaSy123&alt=json", "/v1?key=***&alt=json"),
    ("/t?access_token=ya29.a0&token=t1", "/t?access_token=***&token=***"),
    ("headers={'Authorization': b'AWS4-HMAC-SHA256 Credential=A', 'Host': 'h'}", "'Host': 'h'"),
    ("{'X-Amz-Security-Token': b'FwoGZXIvYXdz', 'Content-Length': '3'}", "'Content-Length': '3'"),
    ("[(b'authorization', b'Basic dXNlcjpwYXNz'), (b'host', b'h')]", "(b'host', b'h')"),
    ('{"x-ms-encryption-key": "a2V5", "x-ms-version": "2024"}', '"x-ms-version": "2024"'),
    ("x-amz-security-token:FwoGZXIvYXdz\nhost:s3.amazonaws.com", "host:s3.amazonaws.com"),
    ("Authorization: Bearer eyJhbGciOi.x.y\r\nAccept: */*", "Accept: */*"),
    ("<SessionToken>FQoG/a+b=</SessionToken><Expiration>2030</Expiration>", "<Expiration>2030</Expiration>"),
    ('{"access_token": "ya29.xx", "expires_in": 3599}', '"expires_in": 3599'),
    ("AccountName=acct;AccountKey=bXlrZXk=;EndpointSuffix=core", "AccountName=acct;AccountKey=***;"),
    ("{'Bucket': 'b', 'Key': 'data/part-0.parquet'}", "{'Bucket': 'b', 'Key': 'data/part-0.parquet'}"),
    ("{'Error': {'Code': 'NoSuchKey'}}", "{'Error': {'Code': 'NoSuchKey'}}"),
]
SECRETS_IN_CASES = [
    "pa55",
    "s3cr%40t",
    "Ab%2Bc%3D",
    "AKIA%2F1",
    "ab12",
    "FwoG",
    "abc",
    "4%2F0Ad",
    "AIzaSy123",
    "ya29",
    "t1",
    "Credential=A",
    "dXNlcjpwYXNz",
    "a2V5",
    "eyJhbGciOi",
    "FQoG",
    "bXlrZXk",
]


@pytest.mark.parametrize(("text", "kept"), CASES)
def test_redact_masks_each_kind_of_secret_and_keeps_the_rest(text: str, kept: str) -> None:
    masked = redact(text)
    assert kept in masked
    for secret in SECRETS_IN_CASES:
        if secret in text and secret not in kept:
            assert secret not in masked, (text, masked)
    assert redact(masked) == masked  # masking twice changes nothing


def test_held_secrets_are_masked_anywhere_in_plain_and_url_encoded_form() -> None:
    secret = _fresh("p@ss/")
    hold_secret(secret)
    encoded = secret.replace("@", "%40").replace("/", "%2F")
    assert redact(f"cannot log in with {secret}, sent {encoded}") == "cannot log in with ***, sent ***"
    hold_secret("short")  # below MIN_SECRET_LENGTH: a word this common is not blanked out
    assert redact("a short note") == "a short note"


# -- where the filter runs ----------------------------------------------------------------------


def test_records_of_child_loggers_and_their_tracebacks_are_masked() -> None:
    install()
    token, password = _fresh("FwoG"), _fresh("pw")
    child = logging.getLogger("botocore.endpoint.sub")  # a filter on "botocore" would not see it
    with debug_log() as out:
        child.debug("Sending http request: headers={'X-Amz-Security-Token': b'%s', 'Host': 'h'}", token)
        try:
            raise RuntimeError(f"connect to https://u:{password}@db.example failed")
        except RuntimeError:
            logging.getLogger("httpx").exception("request failed")
    text = out.getvalue()
    assert token not in text
    assert password not in text
    assert "botocore.endpoint.sub DEBUG Sending http request: headers={'X-Amz-Security-Token': b'***'" in text
    assert "'Host': 'h'" in text
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: connect to https://u:***@db.example failed" in text


def test_other_loggers_are_left_alone_unless_a_handler_has_the_filter() -> None:
    install()
    password = _fresh("pw")
    with debug_log() as out:
        logging.getLogger("someone.else").info("https://u:%s@h", password)
    assert password in out.getvalue()  # the application's own records are its own
    handler = logging.StreamHandler(io.StringIO())
    handler.addFilter(RedactingFilter())
    mine = logging.getLogger("someone.else.filtered")
    mine.addHandler(handler)
    mine.propagate = False
    try:
        mine.warning("https://u:%s@h", password)
    finally:
        mine.removeHandler(handler)
    assert isinstance(handler.stream, io.StringIO)
    assert handler.stream.getvalue() == "https://u:***@h\n"


def test_install_is_idempotent_and_keeps_the_factory_it_wraps() -> None:
    install()
    factory = logging.getLogRecordFactory()
    install()
    install(["my_app"])
    assert logging.getLogRecordFactory() is factory
    made: list[str] = []

    def custom(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record.name)
        return record

    logging.setLogRecordFactory(custom)  # someone else's factory, set later
    try:
        assert not installed()
        install()
        assert installed()
        password = _fresh("pw")
        with debug_log() as out:
            logging.getLogger("my_app.db").info("postgresql://app:%s@db/x", password)
        assert made == ["my_app.db"]
        assert "postgresql://app:***@db/x" in out.getvalue()
    finally:
        logging.setLogRecordFactory(factory)


def test_the_filter_is_installed_once_sygnify_holds_a_secret(tmp_path: Path) -> None:
    script = f"""
import logging, sygnify
from sygnify import redaction
connector = sygnify.CloudDataConnector(environ={{}})
connector.connect("local", root={str(tmp_path)!r})
assert not redaction.installed(), "installed without a secret"
connector.connect("s3", name="chain", bucket="b", region="us-east-1")  # the SDK's default chain
assert redaction.installed()
connector.connect("s3", bucket="b", region="us-east-1", access_key_id="AKIAEXAMPLE",
                  secret_access_key="not-a-real-secret-key")
assert redaction.redact("key not-a-real-secret-key") == "key ***"
print("OK")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "OK"


def test_model_backends_hold_the_credentials_of_their_urls() -> None:
    password, sig = _fresh("pw"), _fresh("sig")
    ml = RealTimeML()
    ml.register("served", backend="tfserving", url=f"http://u:{password}@tfs.invalid:8501", features=["x"])
    ml.register(
        "scored",
        backend="azureml",
        scoring_uri=f"https://ws.westeurope.inference.ml.azure.com/score?sig={sig}",
        api_key=_fresh("key"),
        features=["x"],
    )
    # held, so masked even where no pattern would see a URL or a parameter
    assert redact(f"{password} {sig}") == f"{MASK} {MASK}"


# -- real calls ---------------------------------------------------------------------------------


@pytest.fixture
def http_server() -> Iterator[str]:
    """A local HTTP server answering every GET and POST with a TF Serving style JSON body."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = json.dumps({"predictions": [1.5]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_httpx_request_lines_show_no_user_password_or_sig(http_server: str) -> None:
    import httpx

    install()  # as holding any secret would; these values are not held, the patterns mask them
    password, sig = _fresh("pw"), _fresh("Sig%2B")
    url = f"http://kuser:{password}@{http_server}/score?api-version=2024-02&sig={sig}"
    with debug_log() as out, httpx.Client() as client:
        assert client.get(url).status_code == 200
    text = out.getvalue()
    assert "HTTP Request: GET" in text  # httpx's INFO line is there...
    assert f"http://kuser:***@{http_server}/score?api-version=2024-02&sig=***" in text
    assert password not in text
    assert sig not in text
    assert base64.b64encode(f"kuser:{password}".encode()).decode() not in text
    assert "httpcore" in text  # httpcore's DEBUG lines were captured too


def test_a_served_model_call_logs_no_password(http_server: str) -> None:
    password = _fresh("pw")
    ml = RealTimeML()
    ml.register("tfs", backend="tfserving", url=f"http://tuser:{password}@{http_server}", features=["x"])
    with debug_log() as out:
        assert ml.predict_one("tfs", {"x": 1.0}).prediction == 1.5
    text = out.getvalue()
    assert f"POST http://tuser:***@{http_server}/v1/models/tfs:predict" in text
    assert password not in text


def test_urllib3_debug_lines_show_no_sas_signature(http_server: str) -> None:
    import urllib3

    install()
    sig = _fresh("SAS")
    path = f"/container/blob.parquet?sv=2024-05-04&se=2030-01-01&sr=b&sp=r&sig={sig}%3D"
    with debug_log() as out:
        response = urllib3.PoolManager().request("GET", f"http://{http_server}{path}")
    assert response.status == 200
    text = out.getvalue()
    assert "urllib3.connectionpool DEBUG" in text
    assert "GET /container/blob.parquet?sv=2024-05-04&se=2030-01-01&sr=b&sp=r&sig=*** HTTP/1.1" in text
    assert sig not in text


moto, server = emulator_fixtures(
    moto_server, "moto server could not be installed or started", session="moto", scope="module"
)


@pytest.mark.emulator
def test_botocore_debug_logs_show_no_token_key_or_signature(server: MotoServer) -> None:
    import boto3
    import pyarrow as pa

    secret_key, session_token = _fresh("sk"), _fresh("FwoGZXIvYXdz")
    bucket = f"redaction-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIAREDACTIONTEST",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    with debug_log() as out:
        # the connector's config holds both secrets (validate_config), which installs the filter
        lake = CloudDataConnector(environ={}).connect(
            "s3",
            bucket=bucket,
            endpoint_url=server.endpoint,
            region="us-east-1",
            access_key_id="AKIAREDACTIONTEST",
            secret_access_key=secret_key,
            session_token=session_token,
        )
        lake.write(pa.table({"x": [1, 2, 3]}), "t/x.parquet")
        assert lake.scan("t/x.parquet").collect().height == 3
        # an assumed role: STS answers fresh credentials that no config holds
        assumed = CloudDataConnector(environ={}).connect(
            "s3",
            bucket=bucket,
            endpoint_url=server.endpoint,
            sts_endpoint_url=server.endpoint,
            region="us-east-1",
            access_key_id="AKIAREDACTIONTEST",
            secret_access_key=secret_key,
            role_arn="arn:aws:iam::123456789012:role/reader",
            role_session_name="redaction-test",
        )
        assert assumed.scan("t/x.parquet").collect().height == 3
    text = out.getvalue()
    assert "botocore" in text
    assert "Sending http request" in text
    assert "'X-Amz-Security-Token': b'***'" in text  # the header is named, its value masked
    assert "'Authorization': b'***'" in text
    assert "<SessionToken>***</SessionToken>" in text  # STS's answer, as botocore logs its body
    assert secret_key not in text
    assert session_token not in text
    values = re.findall(r"(?i)x-amz-security-token['\"]?\s*[:=,]\s*b?['\"]?([^'\"\s,&]+)", text)
    values += re.findall(r"(?i)'authorization': b'([^']*)'", text)
    values += re.findall(r"<(?:SessionToken|SecretAccessKey)>([^<]*)<", text)
    assert values
    assert set(values) == {MASK}, sorted(set(values))[:5]
    assert redaction.installed()
