"""Starts a `sleep` (+child_for seconds, 30 by default) that outlives the job: with +child=stderr
it inherits the job's stderr and stdout; with +child=session it runs in a session of its own and
holds none of them. Writes the pids to +board/<x>-<child>.json and a file to its output dir;
then returns x * 10, or with +hang=true ignores SIGTERM and sleeps."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Dict

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> Any:
    options: Dict[str, Any] = {}
    if cfg.child == "session":
        null = subprocess.DEVNULL
        options = {"start_new_session": True, "stdout": null, "stderr": null}
    child = subprocess.Popen(["sleep", str(cfg.get("child_for", 30))], **options)
    Path(HydraConfig.get().runtime.output_dir, "made.txt").write_text(f"x={cfg.x}\n")
    board = Path(cfg.board)
    board.mkdir(parents=True, exist_ok=True)
    pids = {"pid": os.getpid(), "parent": os.getppid(), "child": child.pid}
    name = f"{cfg.x}-{cfg.child}"
    (board / f"{name}.partial").write_text(json.dumps(pids))
    os.replace(board / f"{name}.partial", board / f"{name}.json")
    if cfg.get("hang", False):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(120)
    return cfg.x * 10


if __name__ == "__main__":
    main()
