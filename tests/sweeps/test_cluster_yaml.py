"""cluster.yaml and its on-prem variant against Ray's own JSON schema and config pipeline; ops scripts' shape."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import sweeps_testlib
import yaml

REPO = sweeps_testlib.REPO
CONFIGS = ["cluster.yaml", "cluster-onprem.yaml"]


def _schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


@pytest.mark.parametrize("name", CONFIGS)
def test_cluster_config_matches_ray_schema(name):
    import jsonschema

    config = yaml.safe_load((REPO / name).read_text())
    jsonschema.validate(config, _schema())
    # Ray's own pipeline for `ray up`: defaults filled in (local provider prepared), then validated.
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(config)
    validate_config(prepared)
    assert prepared["head_node_type"] in prepared["available_node_types"]


@pytest.mark.parametrize("name", CONFIGS)
def test_cluster_config_installs_project_and_handles_token(name):
    config = yaml.safe_load((REPO / name).read_text())
    setup = "\n".join(config["setup_commands"])
    assert 'python -m pip install torch==2.13.0 && python -m pip install -e ".[train,sweep]"' in setup
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert any("RAY_AUTH_MODE=token ray start" in c for c in config[key]), key
    assert any("ops/mlflow_server.sh" in c for c in config["head_start_ray_commands"])
    assert "/mnt/shared" in setup


def test_invalid_cluster_config_is_rejected():
    import jsonschema

    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    config["provider"]["typo_field"] = 1
    config["no_such_key"] = True
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, _schema())


@pytest.mark.parametrize("name", ["slurm_sweep.sbatch", "slurm_sweep_multitenant.sbatch", "mlflow_server.sh"])
def test_ops_scripts_parse(name):
    path = REPO / "ops" / name
    subprocess.run(["bash", "-n", str(path)], check=True)
    text = path.read_text()
    if name.endswith(".sbatch"):
        assert "#SBATCH --requeue" in text and "sweeps/ablation.py" in text and "RAY_AUTH_MODE=token" in text
    if name == "slurm_sweep.sbatch":
        assert 'ray symmetric-run --address "$head_addr" --min-nodes "$SLURM_JOB_NUM_NODES"' in text
    if name == "mlflow_server.sh":
        assert 'host="${RADIO_MLFLOW_HOST:-127.0.0.1}"' in text


def test_symmetric_run_cli_exists():
    """The flags the sbatch script uses exist in the installed Ray's `ray symmetric-run`."""
    from click.testing import CliRunner
    from ray.scripts.scripts import cli

    result = CliRunner().invoke(cli, ["symmetric-run", "--help"])
    assert result.exit_code == 0
    assert "--address" in result.output and "--min-nodes" in result.output
