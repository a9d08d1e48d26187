"""The image, Compose file, docker make targets and docs/gpu-hosts.md, checked without Docker."""

from __future__ import annotations

import importlib.metadata
import io
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from helpers import run_cli
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "gpu-hosts.md"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[_norm(name)] = version.strip()
    return pins


LOCK = _pins(ROOT / "requirements" / "lock.txt")
DOCKER_PINS = _pins(ROOT / "requirements" / "docker-constraints.txt")


def _dockerfile(**build_args: str) -> DockerfileParser:
    # A file object, not a path: DockerfileParser can write to a path it was given.
    return DockerfileParser(fileobj=io.BytesIO((ROOT / "Dockerfile").read_bytes()), build_args=build_args)


def _instructions(parser: DockerfileParser, name: str) -> list[str]:
    return [i["value"] for i in parser.structure if i["instruction"] == name]


def _substitute(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], value)


# --- Dockerfile ---------------------------------------------------------------------------

def _docker_python() -> str:
    header = (ROOT / "requirements" / "docker-constraints.txt").read_text()
    match = re.search(r"^# python (\d+\.\d+)\b", header, re.M)
    assert match, "docker-constraints.txt lacks the '# python X.Y' line scripts/lock.sh writes"
    return match.group(1)


@pytest.mark.parametrize("build_args", [{}, {"FLAVOR": "cpu"}], ids=["default", "cpu"])
def test_base_image_is_the_python_the_lock_was_resolved_on(build_args):
    # The base is plain Python (docs/gpu-hosts.md, "Base image"): TensorFlow comes from the lock.
    parser = _dockerfile(**build_args)
    assert parser.baseimage == f"python:{_docker_python()}-slim-bookworm"
    assert parser.args["FLAVOR"] == build_args.get("FLAVOR", "gpu")


def test_image_installs_the_locked_tensorflow_and_every_locked_pin():
    assert DOCKER_PINS["tensorflow"] == LOCK["tensorflow"]
    drift = {n: (v, DOCKER_PINS.get(n)) for n, v in LOCK.items() if DOCKER_PINS.get(n) != v}
    assert not drift, f"run scripts/lock.sh: docker-constraints.txt disagrees with lock.txt: {drift}"
    extra = set(DOCKER_PINS) - set(LOCK)
    assert extra and all(n.startswith("nvidia-") for n in extra), extra


def test_gpu_flavour_pins_every_cuda_wheel_tensorflow_asks_for():
    assert importlib.metadata.version("tensorflow") == LOCK["tensorflow"], "venv is not the lock's"
    needed = [Requirement(r) for r in importlib.metadata.requires("tensorflow")]
    needed = [r for r in needed if r.marker and r.marker.evaluate({"extra": "and-cuda"})
              and not r.marker.evaluate({"extra": ""})]
    assert needed
    for req in needed:
        pinned = DOCKER_PINS.get(_norm(req.name))
        assert pinned and req.specifier.contains(pinned), (req, pinned)
    floor = re.search(r"^cudnn_floor=(\S+)", (ROOT / "scripts" / "lock.sh").read_text(), re.M).group(1)
    assert Version(DOCKER_PINS["nvidia-cudnn-cu12"]) >= Version(floor)


def test_install_step_is_the_script_make_uses():
    parser = _dockerfile()
    assert any("bash scripts/install.sh" in run for run in _instructions(parser, "RUN"))
    assert parser.envs["DLRUN_CONSTRAINTS"] == "/opt/dlrun/requirements/docker-constraints.txt"
    recipes = [line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("\t")]
    assert any("bash scripts/install.sh" in line for line in recipes)


@pytest.mark.parametrize("build_args", [{}, {"UID": "1234", "GID": "99"}], ids=["default", "host-ids"])
def test_runs_as_a_numeric_non_root_user(build_args):
    parser = _dockerfile(**build_args)
    user = _substitute(_instructions(parser, "USER")[-1], parser.args)
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) != 0, user  # numeric: runAsNonRoot checks it
    if build_args:
        assert user == "1234:99"


def test_entrypoint_is_tini_then_dlrun():
    parser = _dockerfile()
    entrypoint = json.loads(_instructions(parser, "ENTRYPOINT")[-1])
    assert entrypoint[0].endswith("/tini") and entrypoint[1] == "--" and entrypoint[-1] == "dlrun"
    assert any(re.search(r"apt-get install .*\btini\b", run) for run in _instructions(parser, "RUN"))


def test_volumes_workdir_and_tfds_dir():
    parser = _dockerfile()
    volumes = [v for value in _instructions(parser, "VOLUME") for v in json.loads(value)]
    assert "/workspace/runs" in volumes
    assert parser.envs["TFDS_DATA_DIR"] in volumes
    assert _instructions(parser, "WORKDIR")[-1] == "/workspace"


def test_image_stays_small():
    parser = _dockerfile()
    assert parser.envs["PIP_NO_CACHE_DIR"] in ("1", "true", "on", "yes")
    for run in _instructions(parser, "RUN"):
        if "apt-get install" in run:
            assert "--no-install-recommends" in run and "rm -rf /var/lib/apt/lists/*" in run
        assert not re.search(r"\b(build-essential|gcc|g\+\+|clang)\b", run), run


def _ignore_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i:end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _docker_ignored(path: str) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; a matched folder covers its files."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        regex = _ignore_regex(line.lstrip("!").strip("/"))
        if any(regex.fullmatch(p) for p in prefixes):
            ignored = not negate
    return ignored


@pytest.mark.parametrize("path", [".venv/bin/python", "runs/digits/x/status.json", ".git/HEAD",
                                  "runner/__pycache__/cli.cpython-311.pyc", ".pytest_cache/v/x",
                                  ".hypothesis/examples/x", "tests/test_docker.py",
                                  "test-artifacts/x.xml", "dlrun.egg-info/PKG-INFO"])
def test_dockerignore_keeps_local_state_out(path):
    assert _docker_ignored(path)


def test_every_copied_path_exists_and_reaches_the_build():
    for value in _instructions(_dockerfile(), "COPY"):
        *sources, _dest = [t for t in value.split() if not t.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: missing"
            assert not _docker_ignored(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"


# --- compose.yaml and the Makefile --------------------------------------------------------

SERVICES = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]


def _mount_source(service: dict, target: str) -> str:
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, dest = volume.get("source"), volume["target"]
        else:
            source, dest = volume.split(":")[:2]
        if dest == target:
            return source
    raise AssertionError(f"no volume on {target}")


def test_tensorboard_is_published_on_loopback_only():
    tensorboard = SERVICES["tensorboard"]
    assert tensorboard["command"] == ["tensorboard", "/workspace/runs", "--host", "0.0.0.0", "--port", "6006"]
    for port in tensorboard["ports"]:
        host_ip = port.get("host_ip") if isinstance(port, dict) else port.split(":")[0]
        assert host_ip == "127.0.0.1", port


def test_train_and_tensorboard_share_runs():
    assert _mount_source(SERVICES["train"], "/workspace/runs") == \
        _mount_source(SERVICES["tensorboard"], "/workspace/runs")


def test_train_reserves_gpus_and_has_an_init():
    train = SERVICES["train"]
    devices = train["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d.get("capabilities", []) for d in devices)
    image_init = json.loads(_instructions(_dockerfile(), "ENTRYPOINT")[-1])[0].endswith("/tini")
    assert train.get("init") is True or ("entrypoint" not in train and image_init)
    assert "stop_grace_period" in train  # time for the backup between SIGTERM and SIGKILL


def test_make_has_the_docker_targets():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("docker-build", "docker-run", "docker-tensorboard"):
        assert re.search(rf"^{target}:", makefile, re.M), target
    run = re.search(r"^docker-run:.*?(?=^\S)", makefile, re.M | re.S).group(0)
    assert "$(SPEC)" in run
    assert "-p 127.0.0.1:6006:6006" in makefile


# --- docs/gpu-hosts.md: every dlrun command line in it must exist and validate ------------

def _code_lines(text: str) -> list[str]:
    lines, block, pending = [], False, ""
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            block, pending = not block, ""
            continue
        if not block:
            continue
        line = pending + line.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        lines.append(line)
    return lines


def _dlrun_args(line: str) -> list[str] | None:
    """The dlrun arguments of a command line: `dlrun ...`, `exec dlrun ...`, `docker run ... IMAGE ...`."""
    tokens = shlex.split(line)
    if tokens[:1] == ["dlrun"]:
        return tokens[1:]
    if tokens[:2] == ["exec", "dlrun"]:
        return tokens[2:]
    if tokens[:2] == ["docker", "run"] and "--entrypoint" not in tokens:
        image = next(i for i, t in enumerate(tokens) if re.fullmatch(r"(\S+/)?dlrun:[\w.-]+", t))
        return tokens[image + 1:]
    return None


def _commands() -> list[list[str]]:
    commands = [a for a in map(_dlrun_args, _code_lines(DOC.read_text())) if a is not None]
    commands += [s["command"] for s in SERVICES.values()]
    return [[t for t in c if t != "--debug"] for c in commands]


def _verb(args: list[str]) -> str:
    return "train" if args[0].endswith((".yaml", ".yml")) else args[0]


def _validate_args(args: list[str]) -> tuple[str, ...]:
    rest = args if args[0].endswith((".yaml", ".yml")) else args[1:]
    spec = next(t for t in rest if not t.startswith("-"))
    sets = [v for flag, v in zip(rest, rest[1:]) if flag == "--set"]
    return (spec, *[x for s in sets for x in ("--set", s)])


COMMANDS = _commands()
VERBS = sorted({_verb(c) for c in COMMANDS})
VALIDATIONS = sorted({_validate_args(c) for c in COMMANDS if _verb(c) in ("train", "validate")})


def test_doc_has_commands_for_every_topic():
    assert {"train", "validate", "resume", "tensorboard"} <= set(VERBS)
    assert any("multi_worker" in " ".join(v) for v in VALIDATIONS)
    assert "scripts/lock.sh" in DOC.read_text()


@pytest.mark.parametrize("verb", VERBS)
def test_doc_verb_exists(verb):
    result = run_cli(verb, "--help", timeout=120)
    assert result.returncode == 0, result.stderr
    # An unknown verb would be read as `dlrun SPEC` and print train's help.
    assert re.search(rf"^usage: dlrun {verb}\b", result.stdout, re.M), result.stdout[:200]


@pytest.mark.parametrize("args", VALIDATIONS, ids=" ".join)
def test_doc_spec_lines_validate(args):
    result = run_cli("validate", *args, timeout=120)
    assert result.returncode == 0, result.stderr


def test_doc_tf_config_examples_are_json():
    configs = [json.loads(t.split("=", 1)[1]) for line in _code_lines(DOC.read_text())
               if line.startswith("docker run") for t in shlex.split(line) if t.startswith("TF_CONFIG=")]
    assert sorted(c["task"]["index"] for c in configs) == list(range(len(configs))) and len(configs) >= 2
    for config in configs:
        assert config["cluster"] == configs[0]["cluster"] and config["task"]["type"] == "worker"


def test_doc_yaml_blocks_parse():
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert blocks
    for block in blocks:
        for doc in yaml.safe_load_all(block):
            assert doc["apiVersion"] and doc["kind"]
