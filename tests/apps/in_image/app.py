"""Runs in an image that holds none of its code: reports what its job saw (seen.json).

It imports a module next to it (helpers.py).
Its own config is a structured config in Hydra's ConfigStore. `pickle_model=true`: the job
pickles an instance of the script's own class (model.pkl), as `torch.save(model)` would.
`reexec=true`: the job starts a copy of the app from `sys.argv` with Hydra's `-cp`/`-cn` of its
saved config, as PyTorch Lightning's DDP launcher does; the copy writes child.json.
`stray=true`: the job writes score-<x>.json in its working dir, outside its output dir.
"""

import json
import logging
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import hydra
from helpers import double
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@dataclass
class AppConfig:
    x: int = 1
    pickle_model: bool = False
    reexec: bool = False
    stray: bool = False


ConfigStore.instance().store(name="in_image", node=AppConfig)


class Model:
    def __init__(self, size: int) -> None:
        self.size = size


def start_copy(output_dir: Path) -> int:
    command = [sys.executable, sys.argv[0], "-cp", str(output_dir / ".hydra"), "-cn", "config"]
    overrides = [f"hydra.run.dir={output_dir / 'copy'}", "+copy=true"]
    return subprocess.run(command + overrides, timeout=120).returncode


@hydra.main(version_base=None, config_path=None, config_name="in_image")
def main(cfg: DictConfig) -> int:
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.get("copy"):
        (output_dir / "child.json").write_text(json.dumps({"argv": sys.argv, "x": cfg.x}))
        return cfg.x
    log.info(f"x={cfg.x} logs as {log.name}")
    if cfg.stray:  # outside its output dir: in the working dir, as Hydra's chdir=false has it
        Path(f"score-{cfg.x}.json").write_text(json.dumps({"x": cfg.x}))
    if cfg.pickle_model:
        (output_dir / "model.pkl").write_bytes(pickle.dumps(Model(cfg.x)))
    seen = {
        "app_config_stored": ConfigStore.instance().load("in_image.yaml").name == "in_image.yaml",
        "argv": sys.argv,
        "double": double(cfg.x),
        "cwd": os.getcwd(),
        "copy_exit": start_copy(output_dir) if cfg.reexec else None,
    }
    (output_dir / "seen.json").write_text(json.dumps(seen))
    return cfg.x


if __name__ == "__main__":
    main()
