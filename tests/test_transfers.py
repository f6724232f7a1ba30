"""Transfers: unchanged logs are not downloaded again; parallel transfers share a large pool."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from conftest import Emulator
from google.cloud import storage as gcs_client
from tcp_proxy import SwitchableProxy

from hydra_plugins.hydra_vertex_pipeline_launcher._shared._storage import (
    MAX_WORKERS,
    PARALLEL_CALLS,
    open_storage,
)


def test_an_unchanged_log_is_not_downloaded_again(root_uri: str, tmp_path: Path) -> None:
    store = open_storage(root_uri, timeout=10)
    local_log = tmp_path / "job" / "app.log"
    versions: dict = {}
    store.write_many({"jobs/0/live.log": b"line 1\n"})
    store.download_changed(
        {"jobs/0/live.log": local_log, "jobs/1/live.log": tmp_path / "x"}, versions
    )
    assert local_log.read_text() == "line 1\n"
    assert not (tmp_path / "x").exists()

    # Were it downloaded again, the copy would lose this mark.
    local_log.write_text("kept\n")
    store.download_changed({"jobs/0/live.log": local_log}, versions)
    assert local_log.read_text() == "kept\n"

    store.write_many({"jobs/0/live.log": b"line 1\nline 2 and more\n"})
    store.download_changed({"jobs/0/live.log": local_log}, versions)
    assert local_log.read_text() == "line 1\nline 2 and more\n"


def test_parallel_collections_fit_the_connection_pool(
    gcs_bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = gcs_client.Client().bucket(gcs_bucket)
    for job in range(PARALLEL_CALLS):
        for n in range(MAX_WORKERS * 2):
            bucket.blob(f"run/jobs/{job}/output/{n}.txt").upload_from_string(b"x")
    store = open_storage(f"gs://{gcs_bucket}/run", timeout=30)
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")

    def collect(job: int) -> None:
        store.download_dir(f"jobs/{job}/output", tmp_path / str(job))

    threads = [threading.Thread(target=collect, args=(job,)) for job in range(PARALLEL_CALLS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(len(list((tmp_path / str(j)).iterdir())) == MAX_WORKERS * 2 for j in range(8))
    assert "Connection pool is full" not in caplog.text


def test_each_staged_object_is_one_request(
    gcs: Emulator, gcs_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = gcs.endpoint.removeprefix("http://").split(":")
    proxy = SwitchableProxy((host, int(port)))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
    try:
        store = open_storage(f"gs://{gcs_bucket}/run", timeout=30)
        store.write_many({"shared.pkl": b"first"})  # the client's first use adds a request
        blobs = {f"jobs/{n}/payload.pkl": bytes([n]) * (100 + n) for n in range(5)}
        before = proxy.requests
        store.write_many(blobs)
        # Sent as a stream of unknown size, each would be a resumable upload: two requests.
        assert proxy.requests - before == len(blobs)
        assert {name: store.read(name) for name in blobs} == blobs
    finally:
        proxy.close()
