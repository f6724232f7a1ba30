"""A Hydra app installed as a package and started by its console script, as many apps are."""

from setuptools import setup

setup(
    name="hvpl-console-app",
    version="1.0",
    packages=["hvpl_console_app"],
    entry_points={"console_scripts": ["hvpl-console-app = hvpl_console_app.cli:main"]},
)
