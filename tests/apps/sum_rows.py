"""Reads the rows make_rows.py wrote into `data` (an input artifact path) and writes their
count and the sum of their x, times `factor`, into `summary` (an output artifact path)."""

import json
import logging
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

log = logging.getLogger(__name__)
ConfigStore.instance().store(
    name="sum_rows", node={"data": "rows.json", "factor": 1.0, "summary": "summary.json"}
)


@hydra.main(version_base=None, config_path=None, config_name="sum_rows")
def main(cfg: DictConfig) -> None:
    rows = json.loads(Path(cfg.data).read_text())["rows"]
    total = sum(row["x"] for row in rows) * cfg.factor
    Path(cfg.summary).write_text(json.dumps({"count": len(rows), "total": total}))
    log.info(f"sum_rows logged: {total}")


if __name__ == "__main__":
    main()
