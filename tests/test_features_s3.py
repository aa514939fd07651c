"""Feature files on S3 (a loopback moto server): atomic write, read back, errors name the URI."""

from __future__ import annotations

import logging
import socket

import numpy as np
import pytest

from sergrad.errors import DataError
from sergrad.features.table import features_table, read_features, write_features


@pytest.fixture()
def s3_uri(monkeypatch):
    import boto3
    import moto.server as server_mod

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
    client.create_bucket(Bucket="feats")
    yield (
        (
            lambda key: (
                f"s3://feats/{key}?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
            )
        ),
        client,
    )
    server.stop()


def test_write_and_read_features_on_s3(s3_uri):
    uri, client = s3_uri
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    table = features_table(
        ["a", "b", "c", "d"], x, meta={"feature_set": "combined", "params": {"k": 1}}
    )
    write_features(table, uri("corpus/combined.parquet"))
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="feats")["Contents"]]
    assert [k for k in keys if not k.endswith("/")] == ["corpus/combined.parquet"]  # no temp left
    ids, got, meta = read_features(uri("corpus/combined.parquet"))
    assert ids == ["a", "b", "c", "d"] and np.array_equal(got, x)
    assert meta["feature_set"] == "combined" and meta["params"] == {"k": 1} and meta["dim"] == 3
    with pytest.raises(DataError, match="absent.parquet"):
        read_features(uri("absent.parquet"))
