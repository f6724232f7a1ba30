"""A module next to the app, imported as `from helpers import double`."""


def double(x: int) -> int:
    return 2 * x
