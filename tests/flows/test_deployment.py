"""prefect.yaml is accepted by `prefect deploy` against a real (temporary) Prefect API, and each
deployment's parameters fit its flow and give a valid pipeline config."""

import inspect
from pathlib import Path

import pytest
import yaml


ROOT = Path(__file__).resolve().parents[2]
DECLARED = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
COLLECTION = [d for d in DECLARED if d["entrypoint"] == "flows.pipeline:sdf_collection"]


def prefect(*args):
    """Prefect's own command line, run in this process from the checkout (as `prefect ARGS` there): the
    flows it deploys are imported already, which saves a subprocess some 15 s of imports on two cores.
    test_cluster runs `prefect deploy` as a subprocess, as README's recipe gives it."""
    from prefect.testing.cli import invoke_and_assert

    return invoke_and_assert(list(args), expected_code=None, echo=False, temp_dir=str(ROOT))


def test_prefect_yaml_deploys_with_its_schedule_and_parameters(prefect_api, monkeypatch):
    monkeypatch.setenv("INRFLOW_PROJECT_DIR", str(ROOT))
    pool = prefect("work-pool", "create", "inrflow-process", "--type", "process", "--overwrite")
    assert pool.exit_code == 0, pool.output
    deployed = prefect("--no-prompt", "deploy", "--all")
    assert deployed.exit_code == 0, deployed.output

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("sdf-collection/demo-nightly")
        weekly = client.read_deployment_by_name("sdf-collection/collection-weekly")
        queries = client.read_deployment_by_name("sdf-collection/queries-weekly")
        nerf = client.read_deployment_by_name("nerf-collection/nerf-weekly")
    assert nightly.work_pool_name == "inrflow-process"
    assert nightly.parameters["manifest"] == "datasets/demo.yaml"
    assert [s.schedule.cron for s in nightly.schedules] == ["0 2 * * *"]
    assert nightly.schedules[0].active is True and weekly.schedules[0].active is False
    assert weekly.parameters["overrides"] == {"training": {"steps": 3000}, "grid": {"resolution": 256}}
    assert [s.schedule.cron for s in queries.schedules] == ["0 4 * * 0"] and queries.schedules[0].active is False
    assert queries.parameters["overrides"]["queries"] == {"isopoints": 20000, "range_mesh": True,
                                                          "range": {"resolution": 256, "tasks": 4}}
    assert nightly.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]
    assert {d["name"] for d in DECLARED} >= {"demo-nightly", "collection-weekly", "queries-weekly", "nerf-weekly",
                                            "skeletons-weekly"}
    assert nerf.parameters["overrides"]["training"]["model"] == "ngp" and nerf.schedules[0].active is False


@pytest.mark.parametrize("deployment", COLLECTION, ids=[d["name"] for d in COLLECTION])
def test_collection_deployments_give_a_valid_config_and_their_stages(deployment):
    from flows.manifest import read_manifest
    from flows.pipeline import STAGES, sdf_collection, stages_for
    from inrcore.settings import config_replace

    parameters = deployment["parameters"]
    assert set(parameters) <= set(inspect.signature(sdf_collection.fn).parameters)
    data = read_manifest(str(ROOT / parameters["manifest"]))
    config = config_replace(data.config, parameters.get("overrides") or {}, f"{deployment['name']}: overrides")
    stages = stages_for(config)
    if deployment["name"] == "queries-weekly":  # the query stages on, after the usual ones
        assert stages == STAGES + ("isopoints", "range-mesh")
        queries = config.queries
        assert queries.isopoints == 20000 and queries.range_mesh and queries.range.resolution == 256
    elif deployment["name"] == "skeletons-weekly":  # the skeleton stage on, after the usual ones
        assert stages == STAGES + ("skeleton-field", "skeleton-trace", "skeleton-select", "skeleton-link")
    else:
        assert stages == STAGES


NERF = [d for d in DECLARED if d["entrypoint"] == "flows.nerfpipeline:nerf_collection"]


@pytest.mark.parametrize("deployment", NERF, ids=[d["name"] for d in NERF])
def test_nerf_deployments_fit_their_flow_and_give_a_valid_config(deployment):
    from flows.manifest import read_manifest
    from flows.nerfpipeline import nerf_collection
    from inrcore.settings import config_replace

    parameters = deployment["parameters"]
    assert set(parameters) <= set(inspect.signature(nerf_collection.fn).parameters)
    data = read_manifest(str(ROOT / parameters["manifest"]))
    config = config_replace(data.nerf, parameters.get("overrides") or {}, f"{deployment['name']}: overrides")
    assert config.training.model == "ngp" and config.training.seconds == 600 and config.scene.size == 100


def test_a_nerf_deployment_is_declared():
    assert [d["name"] for d in NERF] == ["nerf-weekly"]


SPACES = [d for d in DECLARED if d["entrypoint"] == "flows.shapespace_collection:shapespace_collection"]


@pytest.mark.parametrize("deployment", SPACES, ids=[d["name"] for d in SPACES])
def test_shapespace_deployments_fit_their_flow_and_give_a_valid_config(deployment):
    from flows.manifest import read_manifest
    from flows.shapespace_collection import shapespace_collection
    from inrcore.settings import config_replace

    parameters = deployment["parameters"]
    assert set(parameters) <= set(inspect.signature(shapespace_collection.fn).parameters)
    data = read_manifest(str(ROOT / parameters["manifest"]))
    assert len(data.split("train")) == 18 and len(data.split("test")) == 6
    config = config_replace(data.shapespace, parameters.get("overrides") or {}, f"{deployment['name']}: overrides")
    assert config.training.seconds == 600 and config.occnet.seconds == 600


def test_a_shapespace_deployment_is_declared():
    assert [d["name"] for d in SPACES] == ["shapespace-weekly"]
