"""Servers that stop answering for a while: the object store, the MLflow server.

A call to a server that cannot be reached (connection refused or reset, a connect or read timeout,
a name that does not resolve) is tried again after 1, 2, 4, ... seconds (at most 30 between tries)
until `INRFLOW_OUTAGE_SECONDS` (default 120) have passed since the first try; then it fails with a
`ServiceUnavailable` naming the server, how long and how often it was tried, and the last error.
`ServiceUnavailable` is bad luck rather than bad input, but it is an `InrflowError`: Prefect does not
run the whole task again (the waiting was done here), the shape whose stage it was fails alone with
that message, and the rest of the collection goes on. Any other error (a missing object, a refused
request, bad input) is raised at once.

Only failures to reach a server are retried, so a retried call never runs twice on the server: for
the MLflow server only connections that were never made (its client has retries of its own,
`MLFLOW_HTTP_REQUEST_MAX_RETRIES`, which come first); for the object store also timeouts, whose
calls (put, get, list) are idempotent.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Callable, TypeVar

from inrcore.errors import ConfigError, InrflowError


PATIENCE_VARIABLE = "INRFLOW_OUTAGE_SECONDS"
DEFAULT_PATIENCE = 120.0
LONGEST_WAIT = 30.0
# exception classes (by name, anywhere in the class's ancestry or the chain of causes) that mean the
# server was not reached: builtins, botocore, aiohttp, urllib3, requests
UNREACHABLE = frozenset({
    "ConnectionRefusedError", "ConnectionResetError", "ConnectionAbortedError", "BrokenPipeError",
    "EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ServerDisconnectedError",
    "NewConnectionError", "NameResolutionError",
})
TIMED_OUT = frozenset({"ReadTimeoutError", "ConnectTimeout", "ReadTimeout", "ServerTimeoutError", "TimeoutError"})
# how MLflow's client words a request it could not make (it wraps the requests/urllib3 error in text)
MLFLOW_UNREACHABLE = ("Connection refused", "Failed to establish a new connection", "Name or service not known",
                      "Connection reset by peer", "RemoteDisconnected")

T = TypeVar("T")
log = logging.getLogger("inrflow.outages")


class ServiceUnavailable(InrflowError):
    """A server did not answer for longer than the patience allows. The message names it."""


def patience() -> float:
    """Seconds to keep trying an unreachable server: `INRFLOW_OUTAGE_SECONDS` (default 120)."""
    text = os.environ.get(PATIENCE_VARIABLE, "").strip()
    if not text:
        return DEFAULT_PATIENCE
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ConfigError(f"{PATIENCE_VARIABLE} must be a number of seconds (0 or more), got {text!r}")
    return seconds


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_unreachable(exc: BaseException, timeouts: bool = True) -> bool:
    """Whether `exc` (or an error it was raised from) says a server could not be reached; timeouts
    count unless `timeouts` is False. Never bad input: an `InrflowError` is not."""
    if isinstance(exc, InrflowError):
        return False
    names = UNREACHABLE | TIMED_OUT if timeouts else UNREACHABLE
    for error in _chain(exc):
        if any(cls.__name__ in names for cls in type(error).__mro__):
            return True
        if type(error).__name__ == "MlflowException" and any(s in str(error) for s in MLFLOW_UNREACHABLE):
            return True
    return False


def patient(service: str, call: Callable[[], T], timeouts: bool = True) -> T:
    """call(), tried again while the server cannot be reached (`is_unreachable`), for at most
    `patience()` seconds; then `ServiceUnavailable` naming `service` (e.g. "the MLflow server at
    http://host:5000"). Other errors are raised as they are."""
    start, wait, tries = time.monotonic(), 1.0, 0
    limit = patience()
    while True:
        tries += 1
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - sorted below; anything else is raised as it is
            if not is_unreachable(exc, timeouts):
                raise
            waited = time.monotonic() - start
            if waited + wait > limit:
                last = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ServiceUnavailable(
                    f"{service} did not answer: tried {tries} time(s) over {waited:.0f} s "
                    f"({PATIENCE_VARIABLE}={limit:g}); last error: {type(exc).__name__}: {last[:300]}") from exc
            log.warning("%s did not answer (%s); trying again in %.0f s", service, type(exc).__name__, wait)
            time.sleep(wait)
            wait = min(2 * wait, LONGEST_WAIT)
