"""Writes a file and logs, then fails as +fault says: exit (sys.exit(3)), kill (SIGKILL to
itself), hang (sleeps +hang_for seconds, 120 by default), lock (returns a threading.Lock),
http (raises urllib's HTTPError, which pickles but does not unpickle), cancelled (raises
asyncio.CancelledError, a BaseException), imageonly (returns a class of a module only the steps
have: tests/apps/image_only), forge (writes, as a workload with write access to the staging root
could, a result over its own that would create +marker when unpickled, then ends the process
before its step hands back), plant (writes, the same way, files only the launcher writes into
its staged outputs, then returns x * 10), spawn (starts a child process, writes its pid to
child.pid, then hangs); none returns x * 10."""

import asyncio
import email.message
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import urllib.error
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def task(cfg: DictConfig) -> Any:
    log.info(f"job with fault={cfg.fault} starts")
    Path(HydraConfig.get().runtime.output_dir, "before.txt").write_text(f"fault={cfg.fault}\n")
    if cfg.fault == "exit":
        sys.exit(3)
    if cfg.fault == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if cfg.fault == "hang":
        time.sleep(cfg.get("hang_for", 120))
    if cfg.fault == "lock":
        return threading.Lock()
    if cfg.fault == "http":
        url = "https://example.invalid/data"
        raise urllib.error.HTTPError(url, 503, "Service Unavailable", email.message.Message(), None)
    if cfg.fault == "cancelled":
        raise asyncio.CancelledError("stopped while waiting for data")
    if cfg.fault == "imageonly":
        import imageonly

        return imageonly.Thing(cfg.x)
    if cfg.fault == "forge":
        _forge_own_result(cfg)
    if cfg.fault == "plant":
        for bucket, job_prefix in _own_job_prefixes():
            for name in ("vertex_pipeline/planted/run.json", "vertex_status.json"):
                bucket.blob(f"{job_prefix}/output/{name}").upload_from_string(b"{}")
    if cfg.fault == "spawn":
        child = subprocess.Popen(["sleep", "300"])
        Path(HydraConfig.get().runtime.output_dir, "child.pid").write_text(str(child.pid))
        time.sleep(120)
    return cfg.x * 10


class _RunsCommand:
    """Unpickling it runs a command: what a forged result would carry."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> Any:
        return os.system, (self.command,)


def _own_job_prefixes() -> Any:
    """(bucket, `<staging root>/<run id>/jobs/<num>`) of this job, as a workload that can write
    to the staging root finds it."""
    from google.cloud import storage

    hydra_config = HydraConfig.get()
    staging_root = str(hydra_config.launcher.staging_root)
    bucket_name, _, prefix = staging_root[len("gs://") :].partition("/")
    bucket = storage.Client().bucket(bucket_name)
    num = OmegaConf.select(hydra_config, "job.num", throw_on_missing=False) or 0  # a single run: 0
    own = f"/jobs/{num}/payload.pkl"
    for blob in bucket.list_blobs(prefix=f"{prefix}/"):
        if blob.name.endswith(own):
            yield bucket, blob.name[: -len("/payload.pkl")]


def _forge_own_result(cfg: Any) -> None:
    header = b'{"run_id":"x","job":0,"status":"COMPLETED","value":{"pickle":true}}'
    forged = pickle.dumps(_RunsCommand(f"touch {cfg.marker}"))
    for bucket, job_prefix in _own_job_prefixes():
        bucket.blob(f"{job_prefix}/result.pkl").upload_from_string(
            b"hvp-result-1\n" + b"0" * 64 + b"\n" + header + b"\n" + forged
        )
    logging.shutdown()
    os._exit(0)  # the step hands back nothing: the forged result stays


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> Any:
    return task(cfg)


if __name__ == "__main__":
    main()
