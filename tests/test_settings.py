"""A wrong setting is one short message naming it and its fix; nothing is created."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List

import pytest
from apputil import run_app
from fake_vertex import FakeVertex
from google.cloud import storage
from vertexutil import sweep_args

from hydra_plugins.hydra_vertex_pipeline_launcher.config import (
    LauncherConfigError,
    bucket_name_problem,
    settings_from,
    validate,
)

LOCAL = "hydra/launcher=vertex_pipeline_local"


def _refused(tmp_path: Path, settings: List[str], before_the_sweep: bool = True) -> str:
    """before_the_sweep: refused as the launcher is set up, before the sweeper makes the sweep
    dir (and its multirun.yaml); else at launch, before any run dir."""
    sweep = tmp_path / "multirun"
    proc = run_app(
        "flaky.py", ["-m", "+x=1,3", LOCAL, f"hydra.sweep.dir={sweep}", *settings], tmp_path
    )
    assert proc.returncode != 0
    # The message (its list of settings, when several are wrong), and Hydra's hint about
    # HYDRA_FULL_ERROR.
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len([line for line in lines if not line.startswith("  - ")]) == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    if before_the_sweep:
        assert not sweep.exists()
    else:
        assert not (sweep / "vertex_pipeline").exists()
    return proc.stderr


def test_a_gs_staging_root_without_bucket_is_refused(tmp_path: Path) -> None:
    said = _refused(tmp_path, ["hydra.launcher.staging_root=gs://"])
    assert "hydra.launcher.staging_root='gs://' names no bucket" in said
    assert [p.name for p in tmp_path.rglob("gs:*")] == []


@pytest.mark.parametrize("root", ["gs:/", "gs:", "gs:bucket/x"])
def test_a_cloud_storage_root_mistyped_is_refused(tmp_path: Path, root: str) -> None:
    said = _refused(tmp_path, [f"hydra.launcher.staging_root={root}"])
    assert f"hydra.launcher.staging_root={root!r}: a Cloud Storage root is gs://" in said
    assert [p.name for p in tmp_path.rglob("gs:*")] == []


def test_a_poll_interval_above_its_cap_is_refused(tmp_path: Path) -> None:
    said = _refused(
        tmp_path, ["hydra.launcher.poll_interval=5", "hydra.launcher.max_poll_interval=1"]
    )
    assert "hydra.launcher.poll_interval=5.0 is above hydra.launcher.max_poll_interval=1.0" in said


def test_an_unusable_staging_root_is_named_as_set(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    root = str(tmp_path / "a-file" / "staging")
    said = _refused(tmp_path, [f"hydra.launcher.staging_root={root}"], before_the_sweep=False)
    assert f"hydra.launcher.staging_root={root!r}: " in said
    assert "cannot be created" in said and "writable folder" in said


@pytest.mark.parametrize(
    "setting", ["hydra.launcher.request_timeout=0", "hydra.launcher.retries=-1"]
)
def test_other_wrong_settings_are_one_line_too(tmp_path: Path, setting: str) -> None:
    said = _refused(tmp_path, [setting])
    assert setting.split("=")[0] in said


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        (
            ["hydra.launcher.poll_interval=inf", "hydra.launcher.max_poll_interval=inf"],
            "hydra.launcher.poll_interval=inf is more than 10000000 s",
        ),
        (["hydra.launcher.max_poll_interval=1e300"], "max_poll_interval=1e+300 is more than"),
        (["hydra.launcher.timeout=1e300"], "hydra.launcher.timeout=1e+300 is more than"),
        (["hydra.launcher.request_timeout=nan"], "hydra.launcher.request_timeout=nan is not a"),
        (["hydra.launcher.poll_interval=nan"], "hydra.launcher.poll_interval=nan is not a"),
    ],
)
def test_numbers_that_are_not_finite_or_too_large_are_refused_as_such(
    tmp_path: Path, settings: List[str], said: str
) -> None:
    assert said in _refused(tmp_path, settings)


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        (
            ["hydra.launcher.machine_type=n1-highmem-8", "hydra.launcher.resources.cpu_limit=4"],
            "hydra.launcher.resources.cpu_limit sizes a plain step, but "
            "hydra.launcher.machine_type makes each step a CustomJob",
        ),
        (
            ["hydra.launcher.spot=true", "hydra.launcher.max_wait_duration=600"],
            "a Spot step (hydra.launcher.spot=true) does not wait for one",
        ),
        (["hydra.launcher.boot_disk_size_gb=0"], "hydra.launcher.boot_disk_size_gb=0: set it"),
    ],
)
def test_custom_job_settings_that_cannot_hold_together_are_refused(
    tmp_path: Path, settings: List[str], said: str
) -> None:
    assert said in _refused(tmp_path, settings)


def _with_image(
    fake: FakeVertex, bucket: str, sweep: Path, image: str
) -> subprocess.CompletedProcess[str]:
    """flaky.py on the fake Vertex with the given hydra.launcher.image."""
    args = [a for a in sweep_args(fake, bucket, sweep, "+x=1") if "launcher.image=" not in a]
    return run_app("flaky.py", [*args, f"hydra.launcher.image={image}"], sweep.parent)


@pytest.mark.parametrize("image", ["'Not An Image'", "europe-docker.pkg.dev/p/repo/Train:1"])
def test_an_image_reference_that_cannot_be_one_is_refused_before_anything_is_uploaded(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path, image: str
) -> None:
    sweep = tmp_path / "multirun"
    proc = _with_image(fake_vertex, gcs_bucket, sweep, image)
    assert proc.returncode != 0
    assert f"hydra.launcher.image={image.strip(chr(39))!r} cannot be a container image" in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr
    assert not fake_vertex.jobs and not sweep.exists()
    assert list(storage.Client().list_blobs(gcs_bucket)) == []


@pytest.mark.parametrize("tag", ["", ":latest"])
def test_an_image_without_tag_or_digest_runs_with_a_warning(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path, tag: str
) -> None:
    image = f"europe-docker.pkg.dev/p/repo/train{tag}"
    proc = _with_image(fake_vertex, gcs_bucket, tmp_path / "m", image)
    assert proc.returncode == 0, proc.stderr
    assert f"hydra.launcher.image={image} has no tag or digest" in proc.stdout + proc.stderr
    assert "not reproducible" in proc.stdout + proc.stderr


def test_a_pinned_image_gets_no_warning(
    fake_vertex: FakeVertex, gcs_bucket: str, tmp_path: Path
) -> None:
    digest = "europe-docker.pkg.dev/p/repo/train@sha256:" + "0" * 64
    proc = _with_image(fake_vertex, gcs_bucket, tmp_path / "m", digest)
    assert proc.returncode == 0, proc.stderr
    assert "not reproducible" not in proc.stdout + proc.stderr


def test_every_wrong_or_missing_setting_is_named_in_one_error_before_staging(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "multirun"
    settings = [
        "hydra/launcher=vertex_pipeline",
        "hydra.launcher.resources.memory_limit=32X",
        "hydra.launcher.retries=-1",
    ]
    proc = run_app("flaky.py", ["-m", "+x=1,3", f"hydra.sweep.dir={sweep}", *settings], tmp_path)
    assert proc.returncode != 0
    said = proc.stderr
    assert "5 launcher settings need a fix:" in said, said
    for named in (
        "hydra.launcher.project is not set",
        "hydra.launcher.image is not set",
        "hydra.launcher.staging_root is not set",
        "hydra.launcher.resources.memory_limit='32X': Invalid memory string",
        "hydra.launcher.retries=-1: set it to 0 or more",
    ):
        assert f"  - {named}" in said
    assert "Staging" not in proc.stdout + said and "Traceback" not in said
    assert not sweep.exists()


def test_a_wrong_quantity_alone_is_refused_before_any_staging_line(tmp_path: Path) -> None:
    said = _refused(tmp_path, ["hydra.launcher.resources.memory_limit=32X"])
    assert "hydra.launcher.resources.memory_limit='32X': Invalid memory string" in said
    said = _refused(tmp_path, ["hydra.launcher.resources.cpu_limit=4 cores"])
    assert "hydra.launcher.resources.cpu_limit='4 cores': Invalid cpu string" in said


def test_a_bucket_name_cloud_storage_refuses_is_refused(tmp_path: Path) -> None:
    said = _refused(tmp_path, ["hydra.launcher.staging_root=gs://My_Bucket/hydra"])
    assert "'My_Bucket' cannot be a Cloud Storage bucket name: use lowercase letters" in said


@pytest.mark.parametrize(
    ("bucket", "rule"),
    [
        ("My_Bucket", "lowercase letters"),
        ("ab", "at least 3 characters"),
        ("-bucket", "starting and ending with a letter or digit"),
        ("bucket_", "starting and ending with a letter or digit"),
        ("b" * 64, "without dots has at most 63"),
        ("a." + "b" * 64, "each dot-separated part 1 to 63"),
        (".".join(["b" * 60] * 4), "at most 222 characters"),
        ("a..b", "each dot-separated part 1 to 63"),
        ("192.168.5.4", "cannot be an IP address"),
        ("goog-data", "cannot start with goog"),
        ("my-google-data", "hold google"),
        ("my-g00gle-data", "hold google"),
    ],
)
def test_bucket_names_are_checked_as_cloud_storage_rules_them(bucket: str, rule: str) -> None:
    problem = bucket_name_problem(bucket)
    assert problem is not None and rule in problem
    conf = settings_from({"backend": "local", "staging_root": f"gs://{bucket}/x"})
    with pytest.raises(LauncherConfigError, match="cannot be a Cloud Storage bucket name"):
        validate(conf)


@pytest.mark.parametrize(
    "bucket",
    ["abc", "my-bucket_1", "b" * 63, "a.b.c", ".".join(["b" * 63] * 3), "0day", "1.2.3.4.5"],
)
def test_bucket_names_cloud_storage_allows_are_accepted(bucket: str) -> None:
    assert bucket_name_problem(bucket) is None
    validate(settings_from({"backend": "local", "staging_root": f"gs://{bucket}/x"}))
