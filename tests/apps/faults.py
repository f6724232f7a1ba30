"""Writes a file and logs, then fails as +fault says: exit (sys.exit(3)), kill (SIGKILL to
itself), hang (sleeps +hang_for seconds, 120 by default), lock (returns a threading.Lock),
http (raises urllib's HTTPError, which pickles but does not unpickle), cancelled (raises
asyncio.CancelledError, a BaseException), imageonly (returns a class of a module only the steps
have: tests/apps/image_only), forge (writes, as a workload with write access to the staging root
could, a result over its own that would create +marker when unpickled, then ends the process
before its step hands back); none returns x * 10."""

import asyncio
import email.message
import logging
import os
import pickle
import signal
import sys
import threading
import time
import urllib.error
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

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
    return cfg.x * 10


class _RunsCommand:
    """Unpickling it runs a command: what a forged result would carry."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> Any:
        return os.system, (self.command,)


def _forge_own_result(cfg: Any) -> None:
    from google.cloud import storage

    hydra_config = HydraConfig.get()
    staging_root = str(hydra_config.launcher.staging_root)
    bucket_name, _, prefix = staging_root[len("gs://") :].partition("/")
    bucket = storage.Client().bucket(bucket_name)
    own = f"/jobs/{hydra_config.job.num}/payload.pkl"
    payloads = [b for b in bucket.list_blobs(prefix=f"{prefix}/") if b.name.endswith(own)]
    header = b'{"run_id":"x","job":0,"status":"COMPLETED","value":{"pickle":true}}'
    forged = pickle.dumps(_RunsCommand(f"touch {cfg.marker}"))
    for payload in payloads:
        result = payload.name.rsplit("/", 1)[0] + "/result.pkl"
        bucket.blob(result).upload_from_string(
            b"hvp-result-1\n" + b"0" * 64 + b"\n" + header + b"\n" + forged
        )
    logging.shutdown()
    os._exit(0)  # the step hands back nothing: the forged result stays


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> Any:
    return task(cfg)


if __name__ == "__main__":
    main()
