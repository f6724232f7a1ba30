"""Clearing an earlier attempt's objects, on a local folder and on Cloud Storage."""

from __future__ import annotations

from pathlib import Path

import pytest

from hydra_plugins.hydra_vertex_pipeline_launcher._storage import open_storage


@pytest.fixture(params=["local", "gcs"])
def root_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "staging")
    bucket = request.getfixturevalue("gcs_bucket")
    return f"gs://{bucket}/hydra/run-1"


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
