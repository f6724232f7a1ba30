"""The error a wrong setting raises, defined outside config.py: Hydra's plugin scan executes
config.py again, in the same module, each time it scans (a second app in one process, Hydra's
own test suites), which would make a new class that an earlier `except LauncherConfigError`
no longer catches."""

from hydra.errors import CompactHydraException


class LauncherConfigError(CompactHydraException, ValueError):
    """A launcher setting is missing or wrong; raised before anything is staged or submitted.

    A CompactHydraException: Hydra prints just its message, which names the setting and the fix,
    instead of the traceback through Hydra and this plugin.
    """
