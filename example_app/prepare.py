"""Makes noisy points on the line y = 3x - 1 and writes them, split into train and validation
sets, to the JSON file `out`. An ordinary Hydra app, like train.py: nothing in it knows that it
may be a pipeline step.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)


@hydra.main(version_base=None, config_path="conf", config_name="prepare")
def prepare(cfg: DictConfig) -> None:
    rng = random.Random(cfg.seed)
    xs = [rng.uniform(-1, 1) for _ in range(cfg.n_train + cfg.n_val)]
    points = [(x, 3.0 * x - 1.0 + rng.gauss(0.0, cfg.noise)) for x in xs]
    split = {"train": points[: cfg.n_train], "val": points[cfg.n_train :]}
    Path(cfg.out).write_text(json.dumps(split), encoding="utf-8")
    log.info(f"{len(points)} points with noise {cfg.noise} written to {cfg.out}")


if __name__ == "__main__":
    prepare()
