"""A module only "the image" has: steps get its folder on PYTHONPATH, the launcher does not."""

from dataclasses import dataclass


@dataclass
class Thing:
    x: int
