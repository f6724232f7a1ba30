"""The staging root: a local folder or a gs:// prefix, behind one small interface.

Used by the launcher (stage, collect) and by the remote step (fetch payload, mirror outputs).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import AbstractSet, Any, Dict, List, Mapping, Optional, Protocol, Tuple

from ..config import LauncherConfigError

# Parallel transfers per call: uploads and downloads are I/O-bound.
MAX_WORKERS = 16
# Transfers handed to transfer_manager at once: an interrupt waits for this many at most (its
# thread pool finishes every queued transfer before it lets go).
TRANSFER_CHUNK = 4 * MAX_WORKERS
# Calls that transfer at the same time (the launcher collects this many jobs at once).
PARALLEL_CALLS = 8
# Each transfer thread of each call keeps its connection: no new handshakes, no pool overflow.
HTTP_POOL_SIZE = MAX_WORKERS * PARALLEL_CALLS


class UnsafeObjectName(ValueError):
    """A stored name that would land outside the folder it is downloaded into."""


class Storage(Protocol):
    def uri(self, name: str) -> str: ...

    def check_access(self) -> None: ...

    def write_many(self, blobs: Mapping[str, bytes]) -> None: ...

    def read(self, name: str) -> Optional[bytes]: ...

    def upload_dir(self, local_dir: Path, prefix: str, skip: AbstractSet[str] = ...) -> None:
        """Uploads every file below local_dir but those whose relative path, or top folder, is
        in skip."""
        ...

    def upload_file(self, local_file: Path, name: str) -> None: ...

    def download_dir(
        self, prefix: str, local_dir: Path, skip: AbstractSet[str] = frozenset()
    ) -> List[Path]:
        """Downloads what is below prefix into local_dir; then raises UnsafeObjectName if any
        name was refused (never written): unsafe ones, and those whose relative path, or top
        folder, is in skip."""
        ...

    def delete_below(self, name: str) -> None:
        """Deletes the object `name` and every object below `name/`; none there is fine."""
        ...

    def download_changed(self, targets: Mapping[str, Path], versions: Dict[str, Any]) -> None:
        """Downloads each named object that exists to its path (missing ones are skipped), but
        only if its version differs from the one in versions (by name), which is updated: an
        unchanged object is not transferred again."""
        ...


def open_storage(root_uri: str, timeout: float = 120.0, setting: Optional[str] = None) -> Storage:
    """setting: what the user set hydra.launcher.staging_root to, for error messages; root_uri
    may be a run's folder below it."""
    if root_uri.startswith("gs://"):
        return GcsStorage(root_uri, timeout, setting)
    return LocalStorage(Path(root_uri), setting)


def safe_relative(name: str, windows: bool = os.name == "nt") -> PurePosixPath:
    """The name as a path that stays below its folder here: refuses '..', absolute and empty
    parts and, under Windows path rules, backslashes and colons, which Windows reads as
    separators, drives (D:x, C:\\x) or alternate streams (elsewhere they are plain letters, as
    in a checkpoint named by its time)."""
    parts = name.split("/")
    if (
        not name
        or name.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or (windows and any(c in name for c in "\\:"))
    ):
        raise UnsafeObjectName(
            f"refused stored object {name!r}: not a plain relative path, it could land outside "
            "its folder or on another object's file"
        )
    return PurePosixPath(*parts)


def files_below(local_dir: Path, skip: AbstractSet[str] = frozenset()) -> List[PurePosixPath]:
    found = (
        PurePosixPath(p.relative_to(local_dir).as_posix())
        for p in local_dir.rglob("*")
        if p.is_file()
    )
    return sorted(rel for rel in found if str(rel) not in skip and rel.parts[0] not in skip)


# Of a destination's name, what its temp file's name keeps (a name is at most 255 bytes).
TEMP_NAME_KEPT = 64


def _temp_beside(dest: Path) -> str:
    """A fresh name next to dest; whoever creates it gets the usual mode (mkstemp's is 0600).
    Its name keeps only the start of dest's: a name of up to 255 bytes still fits."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    kept = dest.name.encode()[:TEMP_NAME_KEPT].decode(errors="ignore")
    return str(dest.with_name(f".{kept}.{secrets.token_hex(6)}.part"))


def _replace_atomically(dest: Path, write: Any) -> None:
    """Writes through a temp file so that a failed transfer never leaves half a file."""
    tmp = _temp_beside(dest)
    try:
        write(tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class LocalStorage:
    """A staging root on this machine's filesystem (the local backend's default)."""

    def __init__(self, root: Path, setting: Optional[str] = None) -> None:
        self.root = root.absolute()
        self.setting = setting

    def uri(self, name: str) -> str:
        return str(self.root / name)

    def check_access(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            if self.setting is None:
                raise LauncherConfigError(
                    f"{self.root} cannot be created ({e}): set hydra.launcher.staging_root, or "
                    "hydra.sweep.dir, to a writable folder."
                ) from e
            raise LauncherConfigError(
                f"hydra.launcher.staging_root={self.setting!r}: {self.root} cannot be created "
                f"({e}). Set it to a writable folder."
            ) from e

    def write_many(self, blobs: Mapping[str, bytes]) -> None:
        for name, data in blobs.items():
            _replace_atomically(
                self.root / safe_relative(name), lambda tmp, data=data: Path(tmp).write_bytes(data)
            )

    def read(self, name: str) -> Optional[bytes]:
        try:
            return (self.root / safe_relative(name)).read_bytes()
        except FileNotFoundError:
            return None

    def upload_dir(
        self, local_dir: Path, prefix: str, skip: AbstractSet[str] = frozenset()
    ) -> None:
        for rel in files_below(local_dir, skip):
            self.upload_file(local_dir / rel, f"{prefix}/{rel}")

    def upload_file(self, local_file: Path, name: str) -> None:
        # A hard link costs no disk: the local backend's outputs already sit in the job dir.
        _copy_unless_same(local_file, self.root / safe_relative(name), link=True)

    def download_dir(
        self, prefix: str, local_dir: Path, skip: AbstractSet[str] = frozenset()
    ) -> List[Path]:
        source = self.root / safe_relative(prefix)
        names = [str(rel) for rel in files_below(source)] if source.is_dir() else []
        pairs, refused = _destinations(names, local_dir, skip)
        for name, dest in pairs:
            _copy_unless_same(source / name, dest)
        _raise_refusals(refused)
        return [dest for _, dest in pairs]

    def delete_below(self, name: str) -> None:
        path = self.root / safe_relative(name)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()

    def download_changed(self, targets: Mapping[str, Path], versions: Dict[str, Any]) -> None:
        for name, dest in targets.items():
            source = self.root / safe_relative(name)
            try:
                stat = source.stat()
            except FileNotFoundError:
                continue
            version = (stat.st_mtime_ns, stat.st_size)
            if versions.get(name) != version:
                _copy_unless_same(source, dest)
                versions[name] = version


def _copy_unless_same(source: Path, dest: Path, link: bool = False) -> None:
    if dest.exists() and os.path.samefile(source, dest):
        return

    def place(tmp: str) -> None:
        if link:
            try:
                os.link(source, tmp)
                return
            except OSError:
                pass  # another filesystem: copy instead
        shutil.copy2(source, tmp)

    _replace_atomically(dest, place)


def _destinations(
    names: List[str], local_dir: Path, skip: AbstractSet[str]
) -> Tuple[List[Tuple[str, Path]], List[str]]:
    """Where each safe stored name lands below local_dir, and the refusals, before any write."""
    base = local_dir.absolute()
    pairs: List[Tuple[str, Path]] = []
    refused: List[str] = []
    seen: Dict[Path, str] = {}
    file_names = set(names)
    for name in names:
        try:
            rel = safe_relative(name)
        except UnsafeObjectName as e:
            refused.append(str(e))
            continue
        if name in skip or rel.parts[0] in skip:
            refused.append(f"refused stored object {name!r}: that name is the launcher's own")
            continue
        dest = base / rel
        clash = _clash(rel, dest, base, file_names)
        if clash:
            refused.append(f"refused stored object {name!r}: {clash}")
            continue
        if dest in seen:
            refused.append(f"refused stored object {name!r}: it lands on {seen[dest]!r}'s file")
            continue
        seen[dest] = name
        pairs.append((name, dest))
    return pairs, refused


def _clash(rel: PurePosixPath, dest: Path, base: Path, file_names: AbstractSet[str]) -> str:
    """Why a stored file cannot land at dest: a file and a folder of one name (stored as both,
    or a folder already here where the file goes, or a file where its folder goes)."""
    for parent in list(rel.parents)[:-1]:
        if str(parent) in file_names:
            return f"it lands inside {str(parent)!r}, which is stored as a file too"
        if (base / parent).is_file():
            return f"it lands inside {str(parent)!r}, which is a file here"
    if dest.is_dir():
        return "a folder of that name is here"
    return ""


def _raise_refusals(refused: List[str]) -> None:
    if refused:
        raise UnsafeObjectName("; ".join(refused))


class GcsStorage:
    """A gs://bucket/prefix staging root, reached with google-cloud-storage.

    With STORAGE_EMULATOR_HOST set, the client talks to that emulator anonymously.
    """

    def __init__(self, root_uri: str, timeout: float, setting: Optional[str] = None) -> None:
        from google.cloud import storage
        from google.cloud.storage.retry import DEFAULT_RETRY

        bucket_name, _, prefix = root_uri[len("gs://") :].partition("/")
        if not bucket_name:
            raise LauncherConfigError(
                f"hydra.launcher.staging_root={root_uri!r} names no bucket. "
                "Set it to gs://<bucket>/<prefix>."
            )
        self.bucket_name = bucket_name
        self.prefix = prefix.strip("/")
        self.setting = setting or root_uri
        self.timeout = timeout
        self.retry = DEFAULT_RETRY.with_timeout(timeout)
        self._client = _storage_client(storage)
        self._bucket = self._client.bucket(bucket_name)

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def uri(self, name: str) -> str:
        return f"gs://{self.bucket_name}/{self._key(name)}"

    def check_access(self) -> None:
        import requests
        from google.api_core import exceptions

        setting = f"hydra.launcher.staging_root={self.setting}"
        try:
            list(
                self._client.list_blobs(
                    self._bucket,
                    prefix=self._key(""),
                    max_results=1,
                    timeout=self.timeout,
                    retry=self.retry,
                )
            )
        except exceptions.NotFound as e:
            raise LauncherConfigError(
                f"{setting}: bucket {self.bucket_name!r} does not exist. Create it "
                f"(gcloud storage buckets create gs://{self.bucket_name}) or name another."
            ) from e
        except exceptions.Forbidden as e:
            raise LauncherConfigError(
                f"{setting}: no permission to list objects in bucket {self.bucket_name!r} "
                "(grant roles/storage.objectUser to the account you run as)."
            ) from e
        except (exceptions.RetryError, requests.exceptions.RequestException) as e:
            raise self._unreachable(setting, e) from e

    def _unreachable(self, setting: str, error: Exception) -> LauncherConfigError:
        cause = getattr(error, "cause", None) or error
        endpoint = self._client.api_endpoint
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        where = f"STORAGE_EMULATOR_HOST={emulator}" if emulator else "your network or proxy"
        return LauncherConfigError(
            f"{setting}: Cloud Storage at {endpoint} could not be reached within "
            f"hydra.launcher.request_timeout={self.timeout:g} s ({cause!r}). Check {where}, "
            "or raise request_timeout if it is only slow. Nothing was staged or submitted."
        )

    def write_many(self, blobs: Mapping[str, bytes]) -> None:
        # Through files: the client sends a file of known size in one request, but a stream
        # (size unknown) as a resumable upload, two requests (and round trips) per object.
        with tempfile.TemporaryDirectory(prefix="staging-") as scratch:
            sources = []
            for index, (name, data) in enumerate(blobs.items()):
                path = Path(scratch, str(index))
                path.write_bytes(data)
                sources.append((str(path), self._key(name)))
            self._upload(sources)

    def read(self, name: str) -> Optional[bytes]:
        from google.api_core import exceptions

        try:
            return self._bucket.blob(self._key(name)).download_as_bytes(
                timeout=self.timeout, retry=self.retry
            )
        except exceptions.NotFound:
            return None

    def upload_dir(
        self, local_dir: Path, prefix: str, skip: AbstractSet[str] = frozenset()
    ) -> None:
        self._upload(
            [
                (str(local_dir / rel), self._key(f"{prefix}/{rel}"))
                for rel in files_below(local_dir, skip)
            ]
        )

    def upload_file(self, local_file: Path, name: str) -> None:
        self._bucket.blob(self._key(name)).upload_from_filename(
            str(local_file), **self._transfer_kwargs()
        )

    def download_dir(
        self, prefix: str, local_dir: Path, skip: AbstractSet[str] = frozenset()
    ) -> List[Path]:
        key_prefix = self._key(prefix) + "/"
        blobs = list(
            self._client.list_blobs(
                self._bucket, prefix=key_prefix, timeout=self.timeout, retry=self.retry
            )
        )
        # A name ending in / is a folder marker (gcsfuse's mkdir, the console's "create
        # folder"), not a file: nothing to download.
        by_name = {b.name[len(key_prefix) :]: b for b in blobs if not b.name.endswith("/")}
        pairs, refused = _destinations(list(by_name), local_dir, skip)
        self._raise_first(self._download([(by_name[name], dest) for name, dest in pairs]))
        _raise_refusals(refused)
        return [dest for _, dest in pairs]

    def download_changed(self, targets: Mapping[str, Path], versions: Dict[str, Any]) -> None:
        # A metadata read per object, then only changed ones are downloaded (at the generation
        # read). if_generation_not_match would save the metadata read, but the emulator the
        # tests use ignores it.
        names = list(targets)
        with ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="gcs-stat") as pool:
            blobs = list(pool.map(self._existing_blob, names))  # in parallel: one poll's worth
        changed = []
        for name, blob in zip(names, blobs):
            if blob is not None and versions.get(name) != blob.generation:
                # Kept apart: a download may reset the blob's properties from its headers.
                changed.append((name, blob.generation, blob, targets[name]))
        results = self._download([(blob, dest) for _, _, blob, dest in changed])
        for (name, generation, _, _), result in zip(changed, results):
            if not isinstance(result, Exception):
                versions[name] = generation
        self._raise_first(results)

    def _existing_blob(self, name: str) -> Any:
        return self._bucket.get_blob(self._key(name), timeout=self.timeout, retry=self.retry)

    def _upload(self, sources_and_keys: List[Tuple[Any, str]]) -> None:
        from google.cloud.storage import transfer_manager

        for start in range(0, len(sources_and_keys), TRANSFER_CHUNK):
            chunk = sources_and_keys[start : start + TRANSFER_CHUNK]
            transfer_manager.upload_many(
                [(source, self._bucket.blob(key)) for source, key in chunk],
                upload_kwargs=self._transfer_kwargs(),
                worker_type=transfer_manager.THREAD,
                max_workers=MAX_WORKERS,
                raise_exception=True,
            )

    def _download(self, pairs: List[Tuple[Any, Path]]) -> List[Any]:
        """One parallel transfer into temp files; each lands whole or not at all."""
        from google.cloud.storage import transfer_manager

        temps = [_temp_beside(dest) for _, dest in pairs]
        results: List[Any] = []
        try:
            for start in range(0, len(pairs), TRANSFER_CHUNK):
                chunk = slice(start, start + TRANSFER_CHUNK)
                results += transfer_manager.download_many(
                    [(blob, tmp) for (blob, _), tmp in zip(pairs[chunk], temps[chunk])],
                    download_kwargs=self._transfer_kwargs(),
                    worker_type=transfer_manager.THREAD,
                    max_workers=MAX_WORKERS,
                )
            for result, tmp, (_, dest) in zip(results, temps, pairs):
                if not isinstance(result, Exception):
                    os.replace(tmp, dest)
            return results
        finally:
            for tmp in temps:
                if os.path.exists(tmp):
                    os.unlink(tmp)

    def _transfer_kwargs(self) -> Dict[str, Any]:
        return {"timeout": self.timeout, "retry": self.retry}

    @staticmethod
    def _raise_first(results: List[Any]) -> None:
        for result in results:
            if isinstance(result, Exception):
                raise result

    def delete_below(self, name: str) -> None:
        key = self._key(name)
        blobs = self._client.list_blobs(
            self._bucket, prefix=key, timeout=self.timeout, retry=self.retry
        )
        doomed = [b for b in blobs if b.name == key or b.name.startswith(key + "/")]
        self._bucket.delete_blobs(
            doomed, on_error=lambda blob: None, timeout=self.timeout, retry=self.retry
        )


def _storage_client(storage: Any) -> Any:
    from google.auth import exceptions as auth_exceptions

    try:
        client = storage.Client()
    except auth_exceptions.DefaultCredentialsError as e:
        raise LauncherConfigError(
            "hydra.launcher.staging_root is on Cloud Storage but no Google credentials were "
            "found. Run `gcloud auth application-default login`, or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service account key file."
        ) from e
    _size_connection_pool(client._http)
    return client


def _size_connection_pool(session: Any) -> None:
    """requests keeps 10 connections per host by default; the transfers run more at once."""
    from requests.adapters import HTTPAdapter

    for scheme in ("https://", "http://"):
        session.mount(scheme, HTTPAdapter(pool_maxsize=HTTP_POOL_SIZE))
