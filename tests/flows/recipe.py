"""README's "Running on a cluster" recipe as a user runs it, started in the background
(`tests/flows/conftest.py`'s `cluster_recipe`) and read by `tests/flows/test_cluster.py`."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Optional


ROOT = Path(__file__).resolve().parents[2]
BUCKET = "demo"  # the recipe's
STATE = "/tmp/inrflow-cluster"  # the recipe's state folder, replaced by a temporary one
TINY = {"training": {"steps": 40, "network": {"width": 32, "layers": 1}}, "grid": {"resolution": 32},
        "sampling": {"n_surface": 4000, "n_near": 3000, "n_uniform": 2000}, "metrics": {"n_points": 5000}}
TINY_SET = " ".join(f"--set {section}.{key}={value}" for section, values in TINY.items()
                    for key, value in values.items() if key != "network")
TINY_SET += " --set training.network.width=32 --set training.network.layers=1 --quiet"


def recipe_commands() -> list[str]:
    """The commands of README's "Running on a cluster" block, continuation lines joined, comments dropped."""
    section = (ROOT / "README.md").read_text().split("### Running on a cluster", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands, current = [], ""
    for line in block.strip().splitlines():
        line = line.split("  #", 1)[0].rstrip()
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            commands.append(current.strip())
            current = ""
    return commands


def read_env_file(path: Path) -> dict:
    """The variables of cluster-up.sh's `export NAME='value'` lines."""
    variables = {}
    for line in path.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        variables[name] = shlex.split(value)[0]
    return variables


class RecipeRun:
    """The recipe run as written from a folder of the user's (`here`, the checkout's files linked into
    it), `inr run` and the deployment run with tiny settings added, started at once in the background
    (its output in files, not pipes, so that it never waits on a reader); the last command
    (cluster-down) only when `down` is called. The output has "inr-exit=N" and "deployment-exit=N"
    lines."""

    def __init__(self, here: Path):
        self.here, self.state = here, here / "cluster"
        for name in ("scripts", ".venv", "datasets", "prefect.yaml", "flows", "tasks", "inrcore", "pyproject.toml"):
            (here / name).symlink_to(ROOT / name)
        commands = [c.replace(STATE, str(self.state)) for c in recipe_commands()]
        up, source, upload, run, deploy, deployment, self.down_command = commands
        run += " " + TINY_SET
        deployment += " --param overrides=" + shlex.quote(json.dumps(TINY))
        script = "\n".join(["set -e", up, source, upload, deploy, "set +e", run, 'echo "inr-exit=$?"',
                            deployment, 'echo "deployment-exit=$?"'])
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PREFECT_", "MLFLOW_", "AWS_", "INRFLOW_"))}
        self.env.update(HOME=str(here), PREFECT_HOME=str(here / "prefect-home"))
        self.args = ["bash", "-c", script]
        with open(here / "recipe.out", "w") as out, open(here / "recipe.err", "w") as err:
            self.process = subprocess.Popen(self.args, cwd=here, env=self.env, stdout=out, stderr=err, text=True)
        self._result: Optional[subprocess.CompletedProcess] = None
        self._down: Optional[subprocess.CompletedProcess] = None

    def wait(self, timeout: float = 900) -> subprocess.CompletedProcess:
        """The recipe's commands up to the deployment run, once they have ended."""
        if self._result is None:
            try:
                code = self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                raise
            self._result = subprocess.CompletedProcess(self.args, code, (self.here / "recipe.out").read_text(),
                                                       (self.here / "recipe.err").read_text())
        return self._result

    def down(self) -> subprocess.CompletedProcess:
        """The recipe's last command (cluster-down), run once (after the others have ended)."""
        if self._down is None:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._down = subprocess.run(["bash", "-c", self.down_command], cwd=self.here, env=self.env,
                                        capture_output=True, text=True, timeout=120)
        return self._down
