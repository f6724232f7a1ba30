from pathlib import Path

from setuptools import find_namespace_packages, setup

setup(
    name="hydra-vertex-pipeline-launcher",
    version="0.1.0.dev0",
    description="Hydra launcher: (multi)run jobs as the steps of one Vertex AI pipeline run",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    # The namespace itself and an explicit root: with both, setuptools' default editable mode
    # puts the checkout on sys.path (a static .pth) instead of an import hook that hides the
    # hydra_plugins namespace from Hydra's plugin scan. The wheel holds the same files.
    packages=find_namespace_packages(include=["hydra_plugins", "hydra_plugins.*"]),
    package_dir={"": "."},
    python_requires=">=3.9",
    install_requires=[
        "hydra-core>=1.3,<1.4",
        "omegaconf>=2.3,<2.4",
        "kfp>=2.7,<3",
        "google-cloud-aiplatform>=1.60,<3",
        "google-cloud-storage>=2.14,<4",
        "cloudpickle>=2.2,<4",
    ],
    extras_require={
        # Machine types and Spot (CustomJob steps). Every 2.x needs google-cloud-aiplatform<2:
        # installing this extra moves aiplatform to 1.x.
        "customjob": ["google-cloud-pipeline-components>=2.20,<3"],
        # mutation/run.py: mutation testing of what guards users' data and money.
        "mutation": ["cosmic-ray==8.7.0"],
        # benchmarks/run.py compares the local backend with Hydra's joblib launcher.
        "bench": ["hydra-joblib-launcher==1.2.0"],
        "test": [
            "pytest>=8",
            "gcp-storage-emulator==2026.7.19",
            "hydra-optuna-sweeper==1.3.0",
            "ruff==0.17.6",
        ],
    },
    classifiers=[
        "Framework :: Hydra",
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX",
    ],
    entry_points={
        "console_scripts": [
            "hydra-vertex-pipeline = hydra_plugins.hydra_vertex_pipeline_launcher._cli._main:main",
        ],
    },
    include_package_data=True,
)
