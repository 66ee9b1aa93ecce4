"""What the collection flows share: where a run keeps things, its Dask task runner, its inputs, and
the body of the flow (`run_collection`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import dask
from prefect_dask import DaskTaskRunner

from flows.manifest import DatasetManifest, read_manifest
from flows.sizes import check_manifest_sizes
from inrcore.errors import ConfigError
from inrcore.files import remove_stale_partials
from inrcore.settings import config_replace
from tasks import locations as storage


def locations(dataset: str, out_dir: Optional[str], store_url: Optional[str], tracking_uri: Optional[str]) -> dict:
    """Where a run keeps things: the run folder, the Zarr store, MLflow tracking and artifacts.

    Defaults are embedded: `runs/<dataset>`, `<out>/store.zarr`, SQLite `<out>/mlflow.db`
    with artifacts in `<out>/mlartifacts`. A tracking server's URI leaves artifacts to it.
    The run folder may be an fsspec URL (`s3://bucket/run`, `tasks.locations`): the store then
    defaults to `<out>/store.zarr` there too, and tracking needs a server (`tracking_uri`), since
    a SQLite file cannot live in an object store.
    """
    if out_dir and storage.is_url(out_dir):
        if not tracking_uri:
            raise ConfigError(f"out_dir {out_dir}: a run folder at a URL needs an MLflow tracking server "
                              f"(--tracking-uri http://...); the embedded SQLite registry lives on a local disk")
        out = out_dir.rstrip("/")
        return {"out_dir": out, "store_url": store_url or storage.join(out, "store.zarr"),
                "tracking_uri": tracking_uri, "artifact_location": None}
    out = Path(out_dir or Path("runs") / dataset).resolve()
    tracking = tracking_uri or f"sqlite:///{out / 'mlflow.db'}"
    return {
        "out_dir": str(out),
        "store_url": store_url or str(out / "store.zarr"),
        "tracking_uri": tracking,
        "artifact_location": (out / "mlartifacts").as_uri() if tracking.startswith("sqlite:") else None,
    }


# Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes glibc return
# torch's multi-megabyte buffers to the OS after every step: training then spends as long in
# the kernel as in user code (measured: 23.3 s against 11.7 s for 150 steps, BENCHMARKS.md).
# Workers of the LocalCluster keep freed memory up to these sizes instead.
WORKER_MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": str(256 * 2**20), "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20)}


def configure_local_workers() -> None:
    """Make worker processes started from here (LocalCluster nannies) use WORKER_MALLOC_ENV, and
    the Prefect API of the flow run in progress when that is Prefect's temporary server."""
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.update(WORKER_MALLOC_ENV)
    environ.pop("PREFECT_API_URL", None)  # an earlier flow's, in this process; workers inherit a configured one
    api = temporary_server_url()
    if api:
        environ["PREFECT_API_URL"] = api
    dask.config.set({"distributed.nanny.pre-spawn-environ": environ})


def temporary_server_url() -> Optional[str]:
    """The API address of Prefect's temporary server when a flow run in progress uses one (no
    PREFECT_API_URL is set); None otherwise. Worker processes given no address would each start a
    temporary server of their own on their first task (measured: some 13 s of a short run, and three
    servers writing one database)."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value() or FlowRunContext.get() is None:
        return None
    with get_client(sync_client=True) as client:  # the flow's own server, already running
        return str(client.api_url)


def task_runner(dask_address: Optional[str], workers: int) -> DaskTaskRunner:
    """An existing Dask cluster by address, or a LocalCluster of single-threaded worker processes."""
    if dask_address:
        return DaskTaskRunner(address=dask_address)
    configure_local_workers()
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None},
    )


def start_collection(manifest: Union[str, DatasetManifest], section: str, overrides: Optional[dict],
                     out_dir: Optional[str], store_url: Optional[str], tracking_uri: Optional[str]):
    """A collection run's inputs: the manifest (read here when given as a path), its `section`
    settings ("config", "nerf" or "shapespace") with `overrides` applied, and the run's `locations`
    (the run folder created, and the temporary files of writes a killed run left in it removed). Sizes
    that cannot fit are refused first (`flows.sizes.check_sizes`)."""
    data = manifest if isinstance(manifest, DatasetManifest) else read_manifest(manifest)
    settings = getattr(data, section)
    config = config_replace(settings, overrides, "overrides") if overrides else settings
    check_manifest_sizes(data, section, overrides)
    where = locations(data.name, out_dir, store_url, tracking_uri)
    storage.make_folder(where["out_dir"])
    if not storage.is_url(where["out_dir"]):  # an object store never shows a partial object
        remove_stale_partials(where["out_dir"])
    return data, config, where


def run_collection(run_shapes, section: str, manifest: Union[str, DatasetManifest], out_dir: Optional[str],
                   store_url: Optional[str], tracking_uri: Optional[str], dask_address: Optional[str], workers: int,
                   overrides: Optional[dict], quiet: bool, row=lambda s: (s.shape_id, s.path)) -> dict:
    """The body of every collection flow: read the manifest, take its `section` settings ("config" or
    "nerf") with `overrides` applied, and run `run_shapes` (a subflow (dataset, shapes, settings,
    locations, quiet) -> summary) on the Dask task runner, each shape given as `row(entry)` (default
    (id, path)). The parameters are the flows' own (`flows.pipeline.sdf_collection` says what each means)."""
    data, config, where = start_collection(manifest, section, overrides, out_dir, store_url, tracking_uri)
    run = run_shapes.with_options(task_runner=task_runner(dask_address, workers))
    return run(data.name, [row(s) for s in data.shapes], config, where, quiet)
