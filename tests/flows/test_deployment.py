"""prefect.yaml is accepted by `prefect deploy` against a real (temporary) Prefect API."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def prefect(*args, env):
    return subprocess.run([sys.executable, "-m", "prefect", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_prefect_yaml_deploys_with_its_schedule_and_parameters(prefect_api):
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "INRFLOW_PROJECT_DIR": str(ROOT)}
    pool = prefect("work-pool", "create", "inrflow-process", "--type", "process", "--overwrite", env=env)
    assert pool.returncode == 0, pool.stderr + pool.stdout
    deployed = prefect("--no-prompt", "deploy", "--all", env=env)
    assert deployed.returncode == 0, deployed.stderr + deployed.stdout

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name("sdf-collection/demo-nightly")
        weekly = client.read_deployment_by_name("sdf-collection/collection-weekly")
    assert nightly.work_pool_name == "inrflow-process"
    assert nightly.parameters["manifest"] == "datasets/demo.yaml"
    assert [s.schedule.cron for s in nightly.schedules] == ["0 2 * * *"]
    assert nightly.schedules[0].active is True and weekly.schedules[0].active is False
    assert weekly.parameters["overrides"] == {"training": {"steps": 3000}, "grid": {"resolution": 256}}
    assert nightly.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]
    declared = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert {d["name"] for d in declared["deployments"]} == {"demo-nightly", "collection-weekly"}
