"""A task function for in-process launches: x=2 raises, others return x * 10."""

from omegaconf import DictConfig


def task(cfg: DictConfig) -> int:
    if cfg.x == 2:
        raise ValueError("x=2 is not allowed here")
    return int(cfg.x) * 10
