"""The staging root, on a local folder and on Cloud Storage (through gcp-storage-emulator)."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.cloud import storage as gcs_client

from hydra_plugins.hydra_vertex_pipeline_launcher._shared._storage import (
    LauncherConfigError,
    UnsafeObjectName,
    open_storage,
)


def test_round_trip(root_uri: str, tmp_path: Path) -> None:
    store = open_storage(root_uri, timeout=10)
    store.check_access()
    store.write_many({"a.txt": b"alpha", "jobs/0/b.bin": bytes(range(256))})
    assert store.read("a.txt") == b"alpha"
    assert store.read("jobs/0/b.bin") == bytes(range(256))
    assert store.read("missing") is None

    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "c.txt").write_text("gamma\r\n")
    (out / "skip.json").write_text("{}")
    store.upload_dir(out, "jobs/0/output", skip={"skip.json"})
    back = tmp_path / "back"
    landed = store.download_dir("jobs/0/output", back)
    assert landed == [back / "sub" / "c.txt"]
    assert (back / "sub" / "c.txt").read_bytes() == b"gamma\r\n"


def test_download_changed_skips_missing(root_uri: str, tmp_path: Path) -> None:
    store = open_storage(root_uri, timeout=10)
    store.write_many({"live.log": b"line 1\n"})
    targets = {"live.log": tmp_path / "a.log", "nope.log": tmp_path / "b.log"}
    store.download_changed(targets, {})
    assert (tmp_path / "a.log").read_text() == "line 1\n"
    assert not (tmp_path / "b.log").exists()


@pytest.mark.parametrize("evil", ["../x", "a/../../x", "/etc/x", "a//b"])
def test_gcs_download_refuses_names_that_escape(gcs_bucket: str, tmp_path: Path, evil: str) -> None:
    bucket = gcs_client.Client().bucket(gcs_bucket)
    bucket.blob("run/jobs/0/output/ok.txt").upload_from_string(b"fine")
    bucket.blob(f"run/jobs/0/output/{evil}").upload_from_string(b"evil")
    store = open_storage(f"gs://{gcs_bucket}/run", timeout=10)
    job_dir = tmp_path / "sweep" / "0"
    with pytest.raises(UnsafeObjectName, match="refused"):
        store.download_dir("jobs/0/output", job_dir)
    landed = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert landed == [job_dir / "ok.txt"], "only the safe object lands, and inside the job dir"


def test_gcs_missing_bucket_is_a_clear_error(gcs: object) -> None:
    store = open_storage("gs://no-such-bucket/x", timeout=10)
    with pytest.raises(LauncherConfigError, match="staging_root.*no-such-bucket.*does not exist"):
        store.check_access()


def test_delete_below_removes_an_object_or_a_folder_and_nothing_beside(root_uri: str) -> None:
    store = open_storage(root_uri, timeout=10)
    store.check_access()
    kept = {"jobs/0/output.txt": b"a sibling", "jobs/1/output/x": b"another job"}
    store.write_many({"jobs/0/result.pkl": b"r", "jobs/0/output/a": b"a", **kept})
    store.write_many({"jobs/0/output/sub/b": b"b"})

    store.delete_below("jobs/0/result.pkl")
    store.delete_below("jobs/0/output")
    store.delete_below("jobs/9/never-written")

    for name in ("jobs/0/result.pkl", "jobs/0/output/a", "jobs/0/output/sub/b"):
        assert store.read(name) is None
    for name, data in kept.items():
        assert store.read(name) == data
