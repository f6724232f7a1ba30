"""Fits a line to noisy synthetic data by gradient descent; returns the validation loss.

An ordinary Hydra app: nothing in it knows about the launcher.
"""

from __future__ import annotations

import json
import logging
import random

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def make_data(n: int, noise: float, rng: random.Random) -> list[tuple[float, float]]:
    return [
        (x, 3.0 * x - 1.0 + rng.gauss(0.0, noise)) for x in (rng.uniform(-1, 1) for _ in range(n))
    ]


def mse(points: list[tuple[float, float]], w: float, b: float) -> float:
    return sum((w * x + b - y) ** 2 for x, y in points) / len(points)


def fit(points: list[tuple[float, float]], lr: float, epochs: int) -> tuple[float, float]:
    w = b = 0.0
    for _ in range(epochs):
        grad_w = sum(2 * (w * x + b - y) * x for x, y in points) / len(points)
        grad_b = sum(2 * (w * x + b - y) for x, y in points) / len(points)
        w, b = w - lr * grad_w, b - lr * grad_b
    return w, b


def load_data(cfg: DictConfig) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """The points prepare.py wrote to data.path, else points made here."""
    if cfg.data.path:
        with open(cfg.data.path, encoding="utf-8") as f:
            split = json.load(f)
        return [tuple(p) for p in split["train"]], [tuple(p) for p in split["val"]]
    rng = random.Random(cfg.seed)
    data = make_data(cfg.data.n_train + cfg.data.n_val, cfg.data.noise, rng)
    return data[: cfg.data.n_train], data[cfg.data.n_train :]


@hydra.main(version_base=None, config_path="conf", config_name="config")
def train(cfg: DictConfig) -> float:
    train_set, val_set = load_data(cfg)
    w, b = fit(train_set, cfg.lr, cfg.epochs)
    val_loss = mse(val_set, w, b)
    log.info(
        f"lr={cfg.lr} epochs={cfg.epochs} seed={cfg.seed}: "
        f"w={w:.3f} b={b:.3f} val_loss={val_loss:.5f}"
    )
    with open(cfg.model_path, "w", encoding="utf-8") as f:
        json.dump({"w": w, "b": b, "val_loss": val_loss}, f)
    return val_loss


if __name__ == "__main__":
    train()
