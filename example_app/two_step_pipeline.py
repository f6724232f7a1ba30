"""Two unchanged Hydra apps as one Kubeflow pipeline: prepare.py writes the points, train.py fits
a line to them. Each step gets its inputs as Hydra overrides (`data.path=<artifact path>`).

    python example_app/two_step_pipeline.py            # on this machine (the local backend)
    python example_app/two_step_pipeline.py --backend vertex --project my-proj \\
        --staging-root gs://my-bucket/hydra --image us-docker.pkg.dev/my-proj/repo/train:1

Run it from the repository root: the steps run `python example_app/<app>.py`, here as in the
image that example_app/Dockerfile builds (whose working dir holds example_app/).
"""

# No `from __future__ import annotations` here: kfp reads the pipeline function's annotations.
import argparse
import logging
import sys
from typing import Any, Dict, List

from kfp import dsl

from hydra_plugins.hydra_vertex_pipeline_launcher.components import hydra_component, run_pipeline

LOCAL_IMAGE = "python:3.11-slim"  # the local backend ignores the image


def make_pipeline(image: str) -> Any:
    prepare = hydra_component(
        "prepare",
        image,
        ["python", "example_app/prepare.py"],
        parameters={"noise": float, "seed": int},
        outputs=["out"],
    )
    train = hydra_component(
        "train",
        image,
        ["python", "example_app/train.py"],
        parameters={"lr": float, "epochs": int},
        inputs=["data.path"],
        outputs=["model_path"],
    )

    @dsl.pipeline(name="fit-line", description="prepare.py, then train.py on its points")
    def fit_line(lr: float = 0.1, epochs: int = 50, noise: float = 0.1):
        points = prepare(noise=noise, seed=0).set_display_name("prepare")
        trained = train(lr=lr, epochs=epochs, data_path=points.outputs["out"])
        trained.set_display_name("train")

    return fit_line


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("local", "vertex"), default="local")
    parser.add_argument("--project", help="vertex: the Google Cloud project id")
    parser.add_argument("--location", default="us-central1", help="vertex: the region")
    parser.add_argument("--staging-root", help="vertex: gs://bucket/prefix (the pipeline root)")
    parser.add_argument("--image", help="vertex: the image of both steps (example_app/Dockerfile)")
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args(argv)
    if args.backend == "vertex" and not (args.project and args.staging_root and args.image):
        parser.error("--backend vertex needs --project, --staging-root and --image")
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s")

    settings: Dict[str, Any] = {}
    if args.backend == "vertex":
        settings = {
            "project": args.project,
            "location": args.location,
            "staging_root": args.staging_root,
        }
    pipeline = make_pipeline(args.image or LOCAL_IMAGE)
    run = run_pipeline(pipeline, {"lr": args.lr}, backend=args.backend, **settings)
    print(f"Pipeline run {run.run_id}: {run.state}; its record and step logs: {run.run_dir}")
    if run.console_url:
        print(f"Vertex console: {run.console_url}")
    for task in run.tasks.values():
        print(f"  {task.display_name}: {task.state}")
        for name, path in task.artifacts.items():
            print(f"    {name}: {path}")
        if task.error:
            print(f"    error: {task.error}")
    return 0 if run.succeeded else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
