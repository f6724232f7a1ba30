"""Prints a line to stdout and one to stderr, logs one and warns, waits for +go=PATH when given,
prints again; with +flood=N a child process prints N numbered lines and the job a last line
without its newline; then ends as +end says: ok (returns x), raise (a ValueError from a nested
call), exit (sys.exit(3)) or hang (sleeps 120 s)."""

import logging
import subprocess
import sys
import time
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def check(x: int) -> None:
    raise ValueError(f"x={x} is not allowed here")


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> int:
    print(f"printed by x={cfg.x}")
    print(f"to stderr by x={cfg.x}", file=sys.stderr)
    log.info(f"logged by x={cfg.x}")
    warnings.warn(f"warned by x={cfg.x}", stacklevel=1)
    deadline = time.time() + 60
    while cfg.get("go") and not Path(cfg.go).exists() and time.time() < deadline:
        time.sleep(0.1)
    print(f"printed again by x={cfg.x}")
    if cfg.get("flood"):
        lines = f"for i in range({cfg.flood}): print(f'flood line {{i:06d}} ' + 'x' * 100)"
        subprocess.run([sys.executable, "-c", lines], check=True)
        sys.stdout.write(f"last words by x={cfg.x}")
    end = cfg.get("end", "ok")
    if end == "raise":
        check(cfg.x)
    if end == "exit":
        sys.exit(3)
    if end == "hang":
        time.sleep(120)
    return int(cfg.x)


if __name__ == "__main__":
    main()
