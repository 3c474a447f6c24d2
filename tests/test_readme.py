"""The README holds to the code (every layer, loss, route and setting listed) and its snippets run
as written: the quick start's shell and Python, against a real deployment."""
import os
import re
import subprocess
import sys
import typing

import pytest

from tests.api.routes import V1_ROUTES
from tests.stack import ROOT

README = (ROOT / "README.md").read_text()
README_URL = "http://127.0.0.1:8000"


def union_types(annotated) -> set[str]:
    """The ``type`` literal of each member of a discriminated union (Annotated[Union[...], ...])."""
    members = typing.get_args(typing.get_args(annotated)[0])
    return {typing.get_args(m.model_fields["type"].annotation)[0] for m in members}


def section(start: str, end: str) -> str:
    return README[README.index(start):README.index(end, README.index(start))]


def fenced(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", README, re.M | re.S)


def test_every_layer_and_loss_is_listed():
    from app.ml.layers.specs import Layer
    from app.ml.losses import Loss

    layers = section("- Layers (`type`", "- Losses (`type`")
    losses = section("- Losses (`type`", "- Optimizers")
    assert {t for t in union_types(Layer) if f"`{t}`" not in layers} == set()
    assert {t for t in union_types(Loss) if f"`{t}`" not in losses} == set()
    spec_block = section("## The spec", "- `dataset`")
    assert {t for t in union_types(Loss) if not re.search(rf"[ \"]{t}[ \"]", spec_block)} == set()


def test_every_route_is_in_the_api_table():
    table = section("| call | what it does |", "\n\n")
    listed = set()
    for cell in re.findall(r"^\| (.+?) \|", table, re.M):
        for method, path in re.findall(r"`(GET|POST|DELETE|PUT|PATCH) (/[^`?]*)", cell):
            listed.add((method, path))
    for method, path, _ in V1_ROUTES:
        readme_path = re.sub(r"\{\w+_id\}", "{id}", path)
        assert (method, readme_path) in listed, f"{method} {path} is not in the README's API table"


def test_every_setting_is_in_the_configuration_table_once():
    from app.config import Settings

    table = section("| variable | default | meaning |", "\n\n")
    names = [n for cell in re.findall(r"^\| (.+?) \|", table, re.M) for n in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
    assert {f.upper() for f in Settings.model_fields} - set(names) == set()


def test_make_run_takes_a_port():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^PORT \?= 8000$", makefile, re.M)
    assert "trainyard run --host $(HOST) --port $(PORT)" in makefile
    assert "make run PORT=" in README


def run_snippet(args: list[str], text: str, env: dict, cwd) -> subprocess.CompletedProcess:
    done = subprocess.run(args, input=text, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{args}\n{text}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done


def test_the_quick_start_runs_as_written(stack, key, tmp_path):
    """Each snippet as the README has it, the address aside (the test's server has its own port);
    `python` and `trainyard` are the venv's, as `. .venv/bin/activate` makes them."""
    env = {**os.environ, "TRAINYARD_API_KEY": key, "TY": f"Authorization: Bearer {key}",
           "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    local = lambda text: text.replace(README_URL, stack.url)  # noqa: E731
    shell = [b for b in fenced("sh") if "# 1. A CSV" in b]
    assert len(shell) == 1
    done = run_snippet(["bash", "-euo", "pipefail"], local(shell[0]), env, tmp_path)
    assert '"status":"succeeded"' in done.stdout, done.stdout
    assert (tmp_path / "model.safetensors").stat().st_size > 0

    python = {name: [b for b in fenced("python") if marker in b]
              for name, marker in (("rebuild", "build_model("), ("client", "ty.datasets.upload("))}
    assert all(len(blocks) == 1 for blocks in python.values()), python
    rebuilt = run_snippet([sys.executable, "-"], local(python["rebuild"][0]), env, tmp_path)
    assert "Linear(in_features=4, out_features=16" in rebuilt.stdout
    client = run_snippet([sys.executable, "-"], local(python["client"][0]), env, tmp_path)
    assert re.search(r"\['(setosa|versicolor|virginica)'\]", client.stdout), client.stdout
    assert (tmp_path / "model.onnx").stat().st_size > 0


@pytest.mark.parametrize("block", [b for b in fenced("sh") if b.startswith("cat > study.json")])
def test_the_study_json_is_a_valid_study(block, tmp_path):
    subprocess.run(["bash", "-c", block], cwd=tmp_path, check=True)
    from app.studies.schemas import StudyCreate

    StudyCreate.model_validate_json((tmp_path / "study.json").read_text())
