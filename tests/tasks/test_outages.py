"""Servers down for a while: bounded retries, then an error naming the server; real servers on
127.0.0.1 (moto's S3 server paused and resumed, an MLflow server that starts late)."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from inrcore.errors import ShapeError
from tasks import locations, outages, registry


pytestmark = pytest.mark.faults
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_answering(port: int, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing answered on port {port} within {seconds} s")


def test_what_counts_as_a_server_not_answering():
    from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
    from mlflow.exceptions import MlflowException

    assert outages.is_unreachable(ConnectionRefusedError(111, "Connection refused"))
    assert outages.is_unreachable(EndpointConnectionError(endpoint_url="http://127.0.0.1:1/b/k"))
    assert outages.is_unreachable(ReadTimeoutError(endpoint_url="http://127.0.0.1:1/b/k"))
    assert not outages.is_unreachable(ReadTimeoutError(endpoint_url="http://x"), timeouts=False)
    mlflow_refused = MlflowException("API request to http://127.0.0.1:1/api/2.0/mlflow/experiments/get-by-name "
                                     "failed with exception HTTPConnectionPool(host='127.0.0.1', port=1): Max "
                                     "retries exceeded (Caused by NewConnectionError(...: [Errno 111] "
                                     "Connection refused'))")
    assert outages.is_unreachable(mlflow_refused, timeouts=False)
    try:  # an error raised while handling a refused connection counts too
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as inner:
            raise RuntimeError("upload failed") from inner
    except RuntimeError as outer:
        assert outages.is_unreachable(outer)
    assert not outages.is_unreachable(FileNotFoundError("s3://b/missing.obj"))
    assert not outages.is_unreachable(ShapeError("a.obj", "no faces"))
    assert not outages.is_unreachable(MlflowException("RESOURCE_DOES_NOT_EXIST: model 'x' not found"))


def test_patient_tries_again_after_1_then_2_seconds_and_then_gives_up_naming_the_server(monkeypatch):
    monkeypatch.setenv(outages.PATIENCE_VARIABLE, "10")
    calls = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionRefusedError(111, "Connection refused")
        return "answered"

    assert outages.patient("the test server", flaky) == "answered"
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert len(calls) == 3 and gaps[0] == pytest.approx(1.0, abs=0.3) and gaps[1] == pytest.approx(2.0, abs=0.3)

    monkeypatch.setenv(outages.PATIENCE_VARIABLE, "2.5")  # 1 s, then 2 s would pass 2.5 s: 2 tries
    calls.clear()

    def down():
        calls.append(1)
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(outages.ServiceUnavailable,
                       match=r"^the test server did not answer: tried 2 time\(s\) over 1 s "
                       r"\(INRFLOW_OUTAGE_SECONDS=2.5\); last error: ConnectionRefusedError: \[Errno 111\] "
                       r"Connection refused$"):
        outages.patient("the test server", down)
    assert len(calls) == 2

    calls.clear()

    def missing():
        calls.append(1)
        raise FileNotFoundError("s3://b/missing.obj")

    with pytest.raises(FileNotFoundError):  # not an outage: raised at once
        outages.patient("the test server", missing)
    assert len(calls) == 1
    monkeypatch.setenv(outages.PATIENCE_VARIABLE, "soon")
    with pytest.raises(Exception, match="INRFLOW_OUTAGE_SECONDS must be a number of seconds"):
        outages.patience()


@pytest.fixture
def object_server(monkeypatch):
    """A moto S3 server on 127.0.0.1 with a bucket, and the environment pointing at it, with short
    timeouts and no retries of the store's own library (so that the waiting is all `outages`')."""
    port = free_port()
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until_answering(port)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "inrflow-test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "inrflow-test")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv(locations.OPTIONS_VARIABLE, json.dumps({
            "endpoint_url": f"http://127.0.0.1:{port}",
            "config_kwargs": {"connect_timeout": 1, "read_timeout": 1, "retries": {"max_attempts": 1}}}))
        bucket = f"outage-{uuid.uuid4().hex[:12]}"
        fs, _ = locations.filesystem(f"s3://{bucket}")
        fs.mkdir(bucket)
        yield server, bucket
    finally:
        os.killpg(server.pid, signal.SIGCONT)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_an_object_store_paused_for_a_while_is_waited_for_and_then_written(object_server, monkeypatch):
    server, bucket = object_server
    monkeypatch.setenv(outages.PATIENCE_VARIABLE, "60")
    url = f"s3://{bucket}/run/summary.json"
    os.killpg(server.pid, signal.SIGSTOP)  # the server hangs: requests time out
    threading.Timer(4.0, os.killpg, (server.pid, signal.SIGCONT)).start()
    start = time.monotonic()
    locations.write_json(url, {"ok": 1})
    assert time.monotonic() - start > 3.5  # it waited for the server
    assert locations.read_json(url) == {"ok": 1}


def test_an_object_store_down_too_long_fails_naming_the_file(object_server, monkeypatch):
    server, bucket = object_server
    monkeypatch.setenv(outages.PATIENCE_VARIABLE, "3")
    os.killpg(server.pid, signal.SIGSTOP)
    url = f"s3://{bucket}/data/spot.obj"
    start = time.monotonic()
    expected = rf"^the object store holding {url} did not answer: tried "
    with pytest.raises(outages.ServiceUnavailable, match=expected):
        with locations.input_file(url):
            pass
    assert time.monotonic() - start < 20  # bounded: patience plus one try's timeouts


def test_an_mlflow_server_that_starts_late_is_waited_for(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the client's own retries, off: ours only
    monkeypatch.setenv(outages.PATIENCE_VARIABLE, "3")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    with pytest.raises(outages.ServiceUnavailable, match=rf"^the MLflow server at {uri} did not answer: tried 2"):
        registry.ensure_experiment(uri, "nobody-there")
    monkeypatch.setenv(outages.PATIENCE_VARIABLE, "120")
    command = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--artifacts-destination",
               str(tmp_path / "artifacts"), "--serve-artifacts"]
    started = {}

    def start_later():
        time.sleep(2.0)
        started["server"] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                             start_new_session=True,  # without the jobs, as cluster-up.sh
                                             env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})

    later = threading.Thread(target=start_later)
    later.start()
    try:
        begin = time.monotonic()
        experiment = registry.ensure_experiment(uri, "late-server")
        assert time.monotonic() - begin > 2.0  # it was asked before the server was there
        assert registry.client(uri).get_experiment(experiment).name == "late-server"
    finally:
        later.join()
        os.killpg(started["server"].pid, signal.SIGTERM)
        started["server"].wait(timeout=60)
