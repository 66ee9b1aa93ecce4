"""Setting up MLflow tracking for a run, once, before tasks fan out."""

from __future__ import annotations

from prefect import task

from . import registry


@task(name="setup-tracking")
def setup_tracking(tracking_uri: str, experiment: str, artifact_location: str | None = None) -> str:
    """Create the tracking database's tables and the experiment if missing; returns its id."""
    return registry.ensure_experiment(tracking_uri, experiment, artifact_location)
