"""MLflow: experiment runs for training, and the model registry holding each shape's field.

A registered model version's files are `model.safetensors` (see `inrcore.fields.weights`) plus an
MLmodel file of the pyfunc flavour whose loader is this module (`_load_pyfunc`), so
`mlflow.pyfunc.load_model("models:/<name>@<alias>").predict(points)` returns SDF values
and nothing pickled is ever executed on load.
"""

from __future__ import annotations

import contextlib
import functools
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from inrcore.device import resolve_device
from inrcore.fields.evaluation import evaluate_points
from inrcore.fields.networks import FieldSpec
from inrcore.fields.weights import load_field, save_field
from inrcore.shapespace.space import is_shape_space, shape_space_of

from .dbtemplates import count, save_template, sqlite_file, start_from_template
from .outages import patient


WEIGHTS_FILE = "model.safetensors"
# pyfunc.save_model copies data_path to <model>/data/<its name>.
FIELD_DIR = "field"


def model_name(dataset: str, shape_id: str) -> str:
    """Registry name of a shape's field: "<dataset>-<shape_id>" with unusual characters replaced."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{dataset}-{shape_id}")


@functools.lru_cache(maxsize=8)
def client(tracking_uri: str) -> MlflowClient:
    """One client per tracking URI and process (making one costs about 50 ms). Its calls to a tracking
    server it cannot reach are tried again for a while (`tasks.outages`), then fail naming the server."""
    database = sqlite_file(tracking_uri)
    template = start_from_template(database, "mlflow")  # a new tracking database: copied from the template
    if template is not None:
        _NEW_DATABASES[database] = template  # none yet: `ensure_experiment` keeps this one once it is made
    made = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return PatientClient(made, f"the MLflow server at {tracking_uri}") if tracking_uri.startswith("http") else made


_NEW_DATABASES: dict[Path, Path] = {}  # SQLite tracking databases this process makes: their templates' paths


def is_mlflow_template(copy) -> bool:
    """Whether a copy of a just-made tracking database is a template, once its Default experiment is
    removed (its artifact location is the run folder's; MLflow makes it again on first use): migrated,
    no runs or models (`tasks.dbtemplates.save_template`)."""
    copy.execute("DELETE FROM experiment_tags")
    copy.execute("DELETE FROM experiments")
    return count(copy, "alembic_version") == 1 and count(copy, "runs") == 0 and count(copy, "registered_models") == 0


class PatientClient:
    """An MlflowClient whose every method is called through `tasks.outages.patient` (connections never
    made only: a request that reached the server is not sent twice)."""

    def __init__(self, inner: MlflowClient, service: str):
        self._inner, self._service = inner, service

    def __getattr__(self, name: str):
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def patiently(*args, **kwargs):
            return patient(self._service, lambda: attribute(*args, **kwargs), timeouts=False)

        return patiently


def ensure_experiment(tracking_uri: str, name: str, artifact_location: Optional[str] = None) -> str:
    """The id of experiment `name`, created (with `artifact_location`) if missing.

    Call it once before fanning out: with a fresh SQLite file it also creates the tables,
    which must not race between worker processes.
    """
    c = client(tracking_uri)
    experiment = c.get_experiment_by_name(name)
    database = sqlite_file(tracking_uri)
    template = _NEW_DATABASES.pop(database, None)
    if template is not None:  # made by the look-up above: its tables and the Default experiment
        save_template(database, template, is_mlflow_template)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return c.create_experiment(name, artifact_location=artifact_location)
    except mlflow.exceptions.MlflowException:
        # Someone else created it between our look-up and our create.
        return c.get_experiment_by_name(name).experiment_id


def find_model_version(tracking_uri: str, name: str, fingerprint: str):
    """The newest version of `name` tagged with `fingerprint`, or None."""
    c = client(tracking_uri)
    try:
        versions = c.search_model_versions(f"name='{name}' and tag.fingerprint='{fingerprint}'")
    except mlflow.exceptions.MlflowException:
        return None
    if not versions:
        return None
    return max(versions, key=lambda v: int(v.version))


def start_run(tracking_uri: str, experiment_id: str, run_name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
    """Create a run with its parameters (flattened keys) and tags; returns the run id."""
    c = client(tracking_uri)
    run = c.create_run(experiment_id, run_name=run_name, tags=tags)
    flat = [Param(k, str(v)) for k, v in _flatten(params).items()]
    for i in range(0, len(flat), 100):
        c.log_batch(run.info.run_id, params=flat[i:i + 100])
    return run.info.run_id


def log_metrics(tracking_uri: str, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    now = int(time.time() * 1000)
    client(tracking_uri).log_batch(
        run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None]
    )


def metric_histories(tracking_uri: str, run_id: str, prefixes: tuple[str, ...] = ("train/", "test/")
                     ) -> dict[str, list[tuple[int, float]]]:
    """Every logged value of the run's metrics whose names start with one of `prefixes`:
    {name: [(step, value)] in step order}."""
    c = client(tracking_uri)
    names = sorted(name for name in c.get_run(run_id).data.metrics if name.startswith(prefixes))
    return {name: sorted((m.step, m.value) for m in c.get_metric_history(run_id, name)) for name in names}


def log_artifact(tracking_uri: str, run_id: str, path, artifact_path: Optional[str] = None) -> None:
    """Log a file (a local path or a URL, `tasks.locations`) to the run's artifacts under its own name."""
    from . import locations

    with locations.local_copy(path) as local:
        client(tracking_uri).log_artifact(run_id, local, artifact_path)


def end_run(tracking_uri: str, run_id: str, status: str = "FINISHED") -> None:
    client(tracking_uri).set_terminated(run_id, status)


@contextlib.contextmanager
def ending_run(tracking_uri: str, run_id: str) -> Iterator[str]:
    """Ends run `run_id` when the block is left: FINISHED when it completes, FAILED when it raises."""
    try:
        yield run_id
    except BaseException:
        end_run(tracking_uri, run_id, "FAILED")
        raise
    end_run(tracking_uri, run_id)


def register_field(
    tracking_uri: str,
    run_id: str,
    name: str,
    alias: str,
    spec: FieldSpec,
    params,
    metadata: dict[str, Any],
    fingerprint: str,
    description: str = "Neural SDF fitted by inrflow",
) -> tuple[str, str]:
    """Log the field as the run's "model" artifact, register a new version and point `alias` at it.

    Returns (model URI "models:/<name>@<alias>", version). The version is created only
    after the artifact is fully stored, so the registry never names missing files.
    """
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / FIELD_DIR
        data.mkdir()
        save_field(data / WEIGHTS_FILE, spec, params, metadata)
        signature = _named_params_signature(3, {"shape_id": ("string", "")}) if is_shape_space(metadata) else None
        return _register_pyfunc(tracking_uri, run_id, name, alias, data, "tasks.registry", description, fingerprint,
                                signature)


def _register_pyfunc(tracking_uri: str, run_id: str, name: str, alias: str, data: Path, loader_module: str,
                     description: str, fingerprint: str, signature=None) -> tuple[str, str]:
    """Save `data` as a pyfunc model loaded by `loader_module` (with `signature` when its predict takes
    params), log it as the run's "model" artifact,
    register a new version of `name` tagged `fingerprint` (only once the artifact is stored) and
    point `alias` at it. Returns (model URI, version)."""
    c = client(tracking_uri)
    model_dir = data.parent / "model"
    mlflow.pyfunc.save_model(str(model_dir), loader_module=loader_module, data_path=str(data), signature=signature,
                             pip_requirements=["inrflow", "torch", "safetensors"])
    c.log_artifacts(run_id, str(model_dir), "model")
    run = c.get_run(run_id)
    try:
        c.create_registered_model(name, description=description)
    except mlflow.exceptions.MlflowException:
        pass  # already registered
    version = c.create_model_version(
        name, source=f"{run.info.artifact_uri}/model", run_id=run_id, tags={"fingerprint": fingerprint}
    )
    c.set_registered_model_alias(name, alias, version.version)
    return f"models:/{name}@{alias}", version.version


def set_alias(tracking_uri: str, name: str, alias: str, version: str) -> None:
    client(tracking_uri).set_registered_model_alias(name, alias, version)


def load_registered_field(tracking_uri: str, model_uri: str):
    """(spec, params, metadata, run_id) of a registered field, from "models:/<name>@<alias>"."""
    path, run_id = registered_weights(tracking_uri, model_uri, FIELD_DIR)
    spec, params, metadata = load_field(path)
    return spec, params, metadata, run_id


def registered_weights(tracking_uri: str, model_uri: str, data_dir: str) -> tuple[Path, str]:
    """(local path of the weights file, run id) of a registered model "models:/<name>@<alias>" whose data
    folder is `data_dir` (FIELD_DIR, RADIANCE_FIELD_DIR, OCCNET_DIR), downloaded from the registry."""
    c = client(tracking_uri)
    match = re.fullmatch(r"models:/([^@/]+)@([^@/]+)", model_uri)
    if not match:
        raise ValueError(f"{model_uri}: expected a registry URI of the form models:/<name>@<alias>")
    version = c.get_model_version_by_alias(match.group(1), match.group(2))
    source = c.get_model_version_download_uri(version.name, version.version)
    local = patient(f"the MLflow server at {tracking_uri}", timeouts=False, call=lambda: (
        mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=tracking_uri)))
    return Path(local) / "data" / data_dir / WEIGHTS_FILE, version.run_id


class _FieldPredictor:
    """What `mlflow.pyfunc.load_model` returns: predict(points [N, 3]) -> SDF values [N]."""

    def __init__(self, spec: FieldSpec, params, metadata: dict):
        self.spec, self.params, self.metadata = spec, params, metadata

    def predict(self, model_input, params: Optional[dict] = None) -> np.ndarray:
        """Values at points [N, 3]; a DeepSDF shape space needs params={"shape_id": ...} (its member)."""
        points = np.asarray(model_input, dtype=np.float32).reshape(-1, 3)
        device = resolve_device((params or {}).get("device", "auto"))
        spec, weights = self.spec, self.params
        if is_shape_space(self.metadata):
            shape_id = (params or {}).get("shape_id")
            if shape_id is None:
                raise ValueError("this model is a DeepSDF shape space: predict(points, params={'shape_id': ...})")
            spec, weights = shape_space_of(spec, weights, self.metadata).member(shape_id)
        return evaluate_points(spec, weights, points, device)


def _load_pyfunc(data_path: str) -> _FieldPredictor:
    """MLflow pyfunc loader hook: `data_path` is the <model>/data/field folder saved by `register_field`."""
    return _FieldPredictor(*load_field(Path(data_path) / WEIGHTS_FILE))


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


RADIANCE_FIELD_DIR = "radiance_field"


def register_radiance_field(tracking_uri: str, run_id: str, name: str, alias: str, weights_path,
                            fingerprint: str) -> tuple[str, str]:
    """Log a saved radiance field (`inrcore.nerf.training.save_radiance_field`) as the run's "model"
    artifact, register a new version of `name` tagged with `fingerprint` and point `alias` at it.

    `mlflow.pyfunc.load_model(uri).predict(rays [N, 6])` (origins then unit directions) returns
    colours [N, 3]. Returns (model URI "models:/<name>@<alias>", version).
    """
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / RADIANCE_FIELD_DIR
        data.mkdir()
        shutil.copyfile(weights_path, data / WEIGHTS_FILE)
        return _register_pyfunc(tracking_uri, run_id, name, alias, data, "tasks.registry_nerf",
                                "Radiance field trained by inrflow", fingerprint)


OCCNET_DIR = "occupancy_network"


def register_occnet(tracking_uri: str, run_id: str, name: str, alias: str, weights_path, fingerprint: str) -> tuple[str, str]:
    """Log a saved Occupancy Network (`inrcore.shapespace.occnet.save_occnet`) as the run's "model" artifact,
    register a new version of `name` tagged with `fingerprint` and point `alias` at it.

    `mlflow.pyfunc.load_model(uri).predict(points, params={"cloud": cloud})` returns occupancy probabilities.
    """
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / OCCNET_DIR
        data.mkdir()
        shutil.copyfile(weights_path, data / WEIGHTS_FILE)
        return _register_pyfunc(tracking_uri, run_id, name, alias, data, "tasks.registry_occnet",
                                "Occupancy Network trained by inrflow", fingerprint,
                                _named_params_signature(3, {"cloud": ("double", [0.0])}))


def _named_params_signature(width: int, params: dict):
    """A pyfunc signature: inputs float32 [N, width]; `params` {name: (type, default)} passed to predict
    (a list default makes it an array parameter)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

    specs = [ParamSpec(n, t, d, (-1,) if isinstance(d, list) else None) for n, (t, d) in params.items()]
    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, width))]), params=ParamSchema(specs))
