"""Uses its own names as an in-process job would, and reports what it saw (names.json).

+fail=true raises first, on the line marked FAILS HERE; +return_lock=true returns a lock.
"""

import json
import pickle
import threading
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig


class Model:
    def __init__(self, size: int) -> None:
        self.size = size


def double(x: int) -> int:
    return 2 * x


@hydra.main(version_base=None, config_path=None)
def main(cfg: DictConfig) -> object:
    if cfg.get("fail"):
        raise RuntimeError(f"x={cfg.x} fails on purpose")  # FAILS HERE
    if cfg.get("return_lock"):
        return threading.Lock()
    model = instantiate({"_target_": "__main__.Model", "size": cfg.x})
    seen = {
        "instantiated_a_model": isinstance(model, Model),
        "get_method": get_method("__main__.double")(cfg.x),
        "unpickled_size": pickle.loads(pickle.dumps(model)).size,
        "task_is_module_attribute": main.__wrapped__.__code__.co_filename == __file__,
    }
    Path(HydraConfig.get().runtime.output_dir, "names.json").write_text(json.dumps(seen))
    return model.size


if __name__ == "__main__":
    main()
