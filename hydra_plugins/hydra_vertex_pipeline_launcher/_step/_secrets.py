"""Secrets a step reads itself (hydra.launcher.secret_env): each from Secret Manager's REST API
with the step's own credentials, into the step's environment before its job starts, so that a
secret's value reaches neither the compiled spec nor the staging root."""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from typing import Dict, List

# Answers worth asking again, while the request's time lasts.
TRANSIENT_STATUSES = (429, 500, 502, 503, 504)
RETRY_WAIT = 1.0


class SecretUnavailable(RuntimeError):
    """A secret of hydra.launcher.secret_env could not be read: the job does not start."""


def export_secrets(secret_env: List[str], endpoint: str, timeout: float) -> None:
    """secret_env: `NAME=projects/P/secrets/S/versions/V` items, as the step's arguments give
    them."""
    headers = _auth_headers(endpoint) if secret_env else {}
    for item in secret_env:
        name, _, version = item.partition("=")
        os.environ[name] = read_secret(endpoint, version, headers, timeout)


def read_secret(endpoint: str, version: str, headers: Dict[str, str], timeout: float) -> str:
    url = f"{endpoint.rstrip('/')}/v1/{version}:access"
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=max(deadline - time.monotonic(), 1)) as r:
                payload = json.load(r)["payload"]
            return _checked_value(payload, version, endpoint)
        except urllib.error.HTTPError as e:
            if e.code not in TRANSIENT_STATUSES or time.monotonic() + RETRY_WAIT > deadline:
                raise _unavailable(version, endpoint, f"HTTP {e.code} {e.reason}") from None
        except (OSError, ValueError, KeyError, TypeError) as e:  # unreachable, or not the API's
            if time.monotonic() + RETRY_WAIT > deadline:
                raise _unavailable(version, endpoint, repr(e)) from None
        time.sleep(RETRY_WAIT)


def _checked_value(payload: Dict[str, str], version: str, endpoint: str) -> str:
    """The secret's value, its CRC32C checked when the answer gives one (as Secret Manager's
    does), as Google's client libraries check it."""
    import google_crc32c  # google-cloud-storage's own dependency

    data = base64.b64decode(payload["data"])
    expected = payload.get("dataCrc32c")
    if expected is not None and int(expected) != google_crc32c.value(data):
        raise _unavailable(version, endpoint, "its checksum does not match: corrupted on the way")
    return data.decode("utf-8")


def _unavailable(version: str, endpoint: str, why: str) -> SecretUnavailable:
    return SecretUnavailable(
        f"the secret {version} (hydra.launcher.secret_env) could not be read from {endpoint} "
        f"({why}): check that it exists and that the steps' service account may access it "
        "(roles/secretmanager.secretAccessor)"
    )


def _auth_headers(endpoint: str) -> Dict[str, str]:
    """The step's own credentials; an http:// endpoint is a local emulator, reached anonymously."""
    if endpoint.startswith("http://"):
        return {}
    import google.auth
    import google.auth.transport.requests

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    credentials.refresh(google.auth.transport.requests.Request())
    return {"Authorization": f"Bearer {credentials.token}"}
