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
    assert 'python -m pip install torch==2.13.0 && python -m pip install -e ".[train,sweep,cluster]"' in setup
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
        assert "--gpus-per-node" not in _directives(text), "GPUs only when asked (sbatch --gpus-per-node=N)"
        assert "$USER" not in text and "${USER" not in text, "SLURM does not set USER (set -u)"
        assert "--ray-client-server-port" not in text, "needs ray[client]"
        assert "umask 077" in text and 'chmod 600 "$RAY_AUTH_TOKEN_PATH"' in text
        assert "sleep 20" not in text
        assert "ulimit -n 65536 2> /dev/null || echo" in text
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


def _directives(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.startswith("#SBATCH"))


def _commands(config: dict) -> list[str]:
    keys = ("setup_commands", "head_setup_commands", "head_start_ray_commands", "worker_start_ray_commands")
    return [c for key in keys for c in config.get(key) or []]


@pytest.mark.parametrize("name", CONFIGS)
def test_cluster_config_mlflow_server_is_started_once_and_stopped(name):
    """The MLflow guard does not match its own shell (the old `pgrep -f "mlflow server"` always did), a restart
    stops the previous server by its process group, and the server stops with Ray (`ray down` runs `ray stop`)."""
    config = yaml.safe_load((REPO / name).read_text())
    commands = _commands(config)
    assert not any('-f "mlflow server"' in c or "-f 'mlflow server'" in c for c in commands)
    head = config["head_start_ray_commands"]
    stop = next(i for i, c in enumerate(head) if "server.pid" in c and "kill --" in c)
    start_ray = next(i for i, c in enumerate(head) if "ray start --head" in c)
    start_mlflow = next(i for i, c in enumerate(head) if "ops/mlflow_server.sh" in c)
    assert stop < start_ray < start_mlflow
    assert '-f "[m]lflow server"' in head[stop]
    assert "setsid -f" in head[start_mlflow] and "RADIO_MLFLOW_PIDFILE=" in head[start_mlflow]
    assert "RADIO_MLFLOW_STOP_WITH_RAY=127.0.0.1:6379" in head[start_mlflow]
    assert "--port=6379" in head[start_ray]
    assert any("/dev/tcp/127.0.0.1/5000" in c for c in head[start_mlflow:]), "wait until MLflow answers"
    for c in commands:
        # Ray runs each command as `bash --login -c -i '...  && (COMMAND)'`: a leading "(" makes "((", arithmetic.
        assert not c.lstrip().startswith("("), c
        if "ulimit -n" in c:
            assert "ulimit -n 65536 ||" in c, "a refused ulimit says so"


def test_mlflow_guard_pattern_cannot_match_its_own_shell():
    """`pgrep -f PATTERN` run by `bash -c '... PATTERN ...'` sees that shell's command line: the bracketed pattern
    does not match the shell itself, the plain one does (the shipped bug: the server never started)."""
    import shutil

    if shutil.which("pgrep") is None:
        pytest.skip("pgrep not installed")
    for pattern, expected in (("[m]lflow server", "other"), ("mlflow server", "self")):
        cmd = f'pgrep -f "{pattern}" | grep -qx "$$" && echo self || echo other'
        out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True).stdout.strip()
        assert out == expected, pattern


@pytest.mark.parametrize("name", CONFIGS)
def test_cluster_config_every_sweep_command_names_storage_cache_tracking_and_key(name):
    text = (REPO / name).read_text()
    header = [line.lstrip("# ") for line in text.splitlines() if line.startswith("#")]
    sweep = " ".join(header)
    assert "sweeps/ablation.py" in sweep
    for option in (
        "--storage-path /mnt/shared/",
        "--cache-root /mnt/shared/",
        "--tracking-uri http://127.0.0.1:5000",
        "--key-file /mnt/shared/radio-secrets/watermark.key",
    ):
        assert option in sweep, option
    config = yaml.safe_load(text)
    assert ".venv" in config["rsync_exclude"]
    key = "\n".join(config["head_setup_commands"])
    assert "umask 077" in key and "chmod 600 /mnt/shared/radio-secrets/watermark.key" in key


@pytest.mark.parametrize("name", ["slurm_sweep.sbatch", "slurm_sweep_multitenant.sbatch"])
def test_sbatch_sweep_command_names_storage_cache_tracking_and_key(name):
    text = (REPO / "ops" / name).read_text()
    command = text[text.rindex("sweeps/ablation.py") :]
    for option in (
        '--storage-path "$RADIO_STORAGE"',
        '--cache-root "$RADIO_CACHE"',
        '--tracking-uri "$MLFLOW_TRACKING_URI"',
        '--key-file "$key_file"',
    ):
        assert option in command, option
    assert command.rstrip().endswith('"$@"'), "user arguments last, so that they can override"


def test_cluster_extra_is_ray_default_and_not_in_sweep():
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("ray[default]") for dep in extras["cluster"])
    assert not any(dep.startswith("ray[default]") for dep in extras["sweep"])


def test_ops_shell_scripts_are_shellcheck_clean():
    import shutil

    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed")
    scripts = sorted([*(REPO / "ops").glob("*.sh"), *(REPO / "ops").glob("*.sbatch"), *(REPO / "ops").glob("*/*.sh")])
    result = subprocess.run(["shellcheck", "-x", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
