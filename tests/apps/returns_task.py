"""A task function for in-process launches (Hydra's test suites launch so)."""

from omegaconf import DictConfig


def task(cfg: DictConfig) -> int:
    return int(cfg.x) * 10
