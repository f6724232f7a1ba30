"""Reads the secret API_TOKEN from its environment: writes its SHA-256 and returns its length."""

import hashlib
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> int:
    token = os.environ["API_TOKEN"]
    digest = hashlib.sha256(token.encode()).hexdigest()
    Path(HydraConfig.get().runtime.output_dir, "token.sha256").write_text(digest)
    return len(token)


if __name__ == "__main__":
    main()
