"""The result a step hands back, sealed with its run's key, and read back before anything in it
is loaded.

Anyone who can write to the staging root (the steps' service account, say) could replace a
result there; a pickle runs code when it is loaded. So a step seals its result with the run's
own key (`--result-key`, given to the step in the compiled spec, never written to the staging
root; the launcher keeps it in the run's record on the user's machine), and the launcher checks
the seal, an HMAC-SHA256 over the result's bytes, before it reads anything else:

    hvp-result-1 \\n <hmac, hex> \\n <header: one JSON line> \\n <the pickled value, if any>

The header is plain JSON (how the job ended, its traceback, its overrides, ...). A plain return
value (None, bools, numbers, strings, lists and string-keyed dicts of them) travels in the
header as JSON; anything else as a pickle after it, loaded only by the launcher of the run, only
after the seal matched, and only to hand it to Hydra.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import pickle
import secrets
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

MAGIC = b"hvp-result-1\n"
# How a header field's value must look, by name.
HEADER_TYPES = {
    "run_id": str,
    "job": int,
    "status": str,
    "traceback": str,
    "attempt": int,
    "ran_in_output_dir": bool,
    "upload_error": (str, type(None)),
    "overrides": (list, type(None)),
    # What the job left that the user should know (files outside its output dir).
    "warnings": list,
    "value": dict,
}
STATUSES = ("COMPLETED", "FAILED", "UNKNOWN")
PLAIN_SCALARS = (type(None), bool, int, float, str)


class ResultRefused(ValueError):
    """Not a whole result sealed with this run's key: nothing in it was loaded."""


@dataclass(frozen=True)
class RunKey:
    """A run's id and its result key, as its record on the user's machine holds them."""

    run_id: str
    key: str


@dataclass(frozen=True)
class SealedResult:
    """A result whose seal matched: its header read, its pickled value (if any) not loaded."""

    run_id: str
    job: int
    status: str  # a hydra JobStatus name
    traceback: str
    attempt: int
    ran_in_output_dir: bool
    upload_error: Optional[str]
    # The job's hydra.overrides.task as the step ran it; None when the job never started.
    overrides: Optional[List[str]]
    warnings: List[str]
    # {"json": value} for a plain value, {"pickle": True} when the pickle follows the header.
    value: Dict[str, Any]
    pickled: bytes


def new_key() -> str:
    return secrets.token_hex(32)


def seal(header: Dict[str, Any], pickled: bytes, key: str) -> bytes:
    body = json.dumps(header, separators=(",", ":")).encode() + b"\n" + pickled
    return MAGIC + _mac(key, body) + b"\n" + body


def unseal(raw: bytes, key: str) -> SealedResult:
    """Checks the seal first, then that the header is whole; raises ResultRefused otherwise."""
    if not key:
        raise ResultRefused("the run's record holds no result key, so no result can be trusted")
    if not raw.startswith(MAGIC):
        raise ResultRefused("it is not a result a step of this launcher version sealed")
    mac, newline, body = raw[len(MAGIC) :].partition(b"\n")
    if not newline or not hmac.compare_digest(mac, _mac(key, body)):
        raise ResultRefused(
            "its seal does not match the run's key: the run's own step did not write it (it was "
            "changed, replaced or planted in the staging root, or cut short); nothing in it was "
            "loaded"
        )
    header_line, _, pickled = body.partition(b"\n")
    try:
        header = json.loads(header_line)
    except ValueError as e:
        raise ResultRefused(f"its header is not JSON ({e})") from e
    _check_header(header)
    return SealedResult(**header, pickled=pickled)


def peek_run_id(raw: bytes) -> str:
    """The run a result says it is from, before its seal is checked (to find that run's key):
    the seal then proves it or not. Reads JSON only."""
    try:
        header_line = raw[len(MAGIC) :].split(b"\n", 2)[1]
        run_id = json.loads(header_line).get("run_id")
    except (IndexError, ValueError, AttributeError):
        return ""
    return run_id if isinstance(run_id, str) else ""


def plain(value: Any) -> bool:
    """Whether JSON carries value exactly: no tuples, sets, subclasses or non-string keys."""
    if type(value) in PLAIN_SCALARS:
        return True
    if type(value) is list:
        return all(plain(item) for item in value)
    if type(value) is dict:
        return all(type(key) is str and plain(item) for key, item in value.items())
    return False


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name} is not a plain value")


def plain_from_pickle(pickled: bytes) -> Dict[str, Any]:
    """{"json": value} when the pickle holds only a plain value (loaded without resolving a
    single global, so it runs nothing); else {"pickle": True}."""
    try:
        value = _NoGlobals(io.BytesIO(pickled)).load()
    except Exception:  # noqa: BLE001 - anything else stays a pickle
        return {"pickle": True}
    return {"json": value} if plain(value) else {"pickle": True}


def _check_header(header: Any) -> None:
    if not isinstance(header, dict):
        raise ResultRefused("its header is not a JSON object")
    missing = sorted(set(HEADER_TYPES) - header.keys())
    unknown = sorted(header.keys() - set(HEADER_TYPES))
    if missing or unknown:
        raise ResultRefused(f"its header lacks {missing} or has unknown fields {unknown}")
    for name, kind in HEADER_TYPES.items():
        if not isinstance(header[name], kind) or (kind is int and isinstance(header[name], bool)):
            raise ResultRefused(f"its header's {name} is {header[name]!r}")
    if header["status"] not in STATUSES:
        raise ResultRefused(f"its header's status is {header['status']!r}")
    if not ({"json"} == header["value"].keys() or header["value"] == {"pickle": True}):
        raise ResultRefused(f"its header's value is {header['value']!r}")


def _mac(key: str, body: bytes) -> bytes:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest().encode()
