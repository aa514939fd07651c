"""Issue 12 item 8: one store-opening path. `query` and `table` on an S3-compatible store
honour `endpoint_override` (a loopback moto server; nothing contacts AWS), and an endpoint
that accepts connections but never answers fails with an error naming the URI."""

from __future__ import annotations

import logging
import socket
import threading

import boto3
import pytest
from store_fixtures import build_store

from sergrad.cli import main

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def aws_env(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)


@pytest.fixture()
def moto_endpoint(aws_env):
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop()


def test_query_and_table_use_the_endpoint_override(tmp_path, moto_endpoint, capsys):
    fx = build_store(tmp_path / "local")
    s3 = boto3.client("s3", endpoint_url=f"http://{moto_endpoint}", region_name="us-east-1")
    s3.create_bucket(Bucket="res")
    for path in fx.root.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), "res", f"st/{path.relative_to(fx.root)}")
    uri = f"s3://res/st?endpoint_override={moto_endpoint}&scheme=http&region=us-east-1"
    sql = "select count(*) as n from runs"
    capsys.readouterr()
    assert main(["query", str(fx.root), sql]) == 0
    local = capsys.readouterr().out
    assert main(["query", uri, sql]) == 0
    remote = capsys.readouterr().out
    n_runs = len(list((fx.root / "runs").rglob("*.parquet")))
    assert str(n_runs) in remote and str(n_runs) in local
    assert main(["table", "ser", uri]) == 0
    assert main(["table", "ser", str(fx.root)]) == 0


def test_an_endpoint_that_never_answers_fails_naming_the_uri(aws_env, capsys):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept_and_ignore():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_ignore, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    uri = (f"s3://b/x?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
           "&connect_timeout=1&request_timeout=1")  # fmt: skip
    try:
        assert main(["sweep", "status", uri]) == 2
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()
    err = capsys.readouterr().err
    assert f"store {uri!r}" in err or uri in err
    assert held, "the client did connect (the endpoint accepts, then never answers)"
