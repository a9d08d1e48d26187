"""get_strategy(cfg): the tf.distribute strategy the spec asks for, with explicit branches, and its preflight checks."""

from __future__ import annotations

import json
import os
import socket
import time

from runner.kernel.errors import ConfigError, EnvironmentProblem


def _split_cpu(n: int) -> list[str]:
    """Split the host CPU into n logical devices (must happen before TF initializes its devices)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:  # already initialized: keep what is there if it matches
        pass
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) != n:
        raise ConfigError(f"distribute.cpu_replicas: TensorFlow was already initialized with {len(devices)} "
                          f"CPU devices; cannot split into {n}")
    return devices


def configure_devices(cfg_distribute) -> None:
    """What must happen before TensorFlow initializes its devices (anything that builds a layer does)."""
    if cfg_distribute.strategy == "mirrored" and cfg_distribute.cpu_replicas:
        _split_cpu(cfg_distribute.cpu_replicas)
    if cfg_distribute.strategy == "multi_worker":  # early too: an unreachable worker fails in seconds
        _check_peers_once(cfg_distribute)


def get_strategy(cfg_distribute):
    import tensorflow as tf

    kind = cfg_distribute.strategy
    # listing devices initializes TensorFlow's context, which multi_worker must configure first
    gpus = [] if kind in ("multi_worker", "tpu") else tf.config.list_logical_devices("GPU")
    if kind == "auto":
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if kind == "default":
        return tf.distribute.get_strategy()
    if cfg_distribute.devices and kind in ("one_device", "mirrored"):
        _check_devices(cfg_distribute.devices)
    if kind == "one_device":
        device = (cfg_distribute.devices or [gpus[0].name if gpus else "/cpu:0"])[0]
        return tf.distribute.OneDeviceStrategy(device)
    if kind == "mirrored":
        devices = cfg_distribute.devices
        if cfg_distribute.cpu_replicas:
            devices = _split_cpu(cfg_distribute.cpu_replicas)
        return tf.distribute.MirroredStrategy(devices=devices)
    if kind == "multi_worker":
        return _multi_worker(cfg_distribute)
    if kind == "tpu":
        return _tpu(cfg_distribute.tpu)
    raise ConfigError(f"distribute.strategy: unsupported strategy {kind!r}")


def _check_devices(names: list) -> None:
    """Each named device exists here: TensorFlow would otherwise place the work elsewhere without a word."""
    import tensorflow as tf

    here = {_canonical(d.name): None for d in tf.config.list_logical_devices()}  # in TensorFlow's order
    for i, name in enumerate(names):
        try:
            missing = _canonical(name) not in here
        except ValueError:
            raise ConfigError(f"distribute.devices[{i}]: not a device name like /gpu:0; received {name!r}") from None
        if missing:
            raise EnvironmentProblem(f"distribute.devices[{i}]: this host has no device {name!r}; it has "
                                     f"{', '.join(f'/{kind.lower()}:{index}' for kind, index in here)}. Name one "
                                     "of those, or remove distribute.devices")


def _canonical(name: str) -> tuple:
    """(type, index) of a device name in any of TensorFlow's spellings: /gpu:0, /device:GPU:0, GPU:0, ..."""
    import tensorflow as tf

    spec = tf.DeviceSpec.from_string(name if name.startswith("/") else "/" + name)
    if spec.device_type is None:
        raise ValueError(name)
    return spec.device_type.upper(), spec.device_index or 0


def cluster(cfg_distribute) -> tuple[dict, str, int]:
    """(cluster spec as {job: [host:port]}, this task's type, its index) from distribute.workers or TF_CONFIG."""
    if cfg_distribute.workers:
        return {"worker": list(cfg_distribute.workers)}, "worker", cfg_distribute.task_index
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError("distribute.strategy: multi_worker needs the cluster: set distribute.workers "
                          "(every worker's host:port) and distribute.task_index, or the TF_CONFIG environment "
                          "variable; received neither")
    try:
        tf_config = json.loads(raw)
        spec, task = tf_config["cluster"], tf_config["task"]
        task_type, index = task["type"], int(task["index"])
        spec[task_type][index]  # this task must be a member of the cluster
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise EnvironmentProblem(f"TF_CONFIG: expected {{\"cluster\": {{\"worker\": [\"host:port\", ...]}}, "
                                 f"\"task\": {{\"type\": \"worker\", \"index\": N}}}}; received {raw!r} ({e!r})") \
            from None
    return spec, task_type, index


_CHECKED: set = set()


def _check_peers_once(cfg_distribute) -> tuple[dict, str, int]:
    spec, task_type, index = cluster(cfg_distribute)
    key = (json.dumps(spec, sort_keys=True), task_type, index)
    if key not in _CHECKED:
        wait_for_peers(spec, task_type, index, cfg_distribute.connect_timeout)
        _CHECKED.add(key)
    return spec, task_type, index


def _members(spec: dict) -> list[tuple[str, int]]:
    """The (job, index) of every training task: the chief first, then the workers."""
    return [(job, i) for job in ("chief", "worker") for i in range(len(spec.get(job, [])))]


def wait_for_peers(spec: dict, task_type: str, index: int, timeout: float) -> None:
    """Every worker listens on its own port and connects to every other one until all have reached each other.

    TensorFlow's own server start blocks in C++, holding the GIL, until every worker has joined, so a wrong
    address would hang it forever; this handshake runs first, on the same ports, and can give up in time.
    """
    members = _members(spec)
    me = members.index((task_type, index))
    peers = {i for i in range(len(members)) if i != me}
    if not peers:
        return
    address = lambda i: spec[members[i][0]][members[i][1]]  # noqa: E731
    port = int(address(me).rpartition(":")[2])
    try:
        listener = socket.create_server(("", port))
    except OSError as e:
        raise EnvironmentProblem(f"multi_worker: this worker ({members[me][0]} {members[me][1]}) cannot listen on "
                                 f"{address(me)}: {e.strerror or e}; free the port or change it in the cluster")
    reached, heard = set(), set()
    deadline = time.monotonic() + timeout
    with listener:
        listener.settimeout(0.1)
        while (reached != peers or heard != peers) and time.monotonic() < deadline:
            for i in peers - reached:
                host, _, peer_port = address(i).rpartition(":")
                try:
                    # the connecting side closes first, so TIME_WAIT never holds a port TF's server needs
                    with socket.create_connection((host.strip("[]"), int(peer_port)), timeout=0.5) as conn:
                        conn.sendall(f"dlrun {me}\n".encode())
                    reached.add(i)
                except OSError:
                    pass
            heard |= _accept_hellos(listener, len(members))
            if reached != peers:
                time.sleep(0.2)
    if reached != peers:
        names = ", ".join(f"{address(i)} ({members[i][0]} {members[i][1]})" for i in sorted(peers - reached))
        raise EnvironmentProblem(f"multi_worker: cannot reach {names} within {timeout:g} s "
                                 "(distribute.connect_timeout); check that every worker runs with the same "
                                 "cluster, the host names resolve and the ports are open")
    if heard != peers:
        names = ", ".join(f"{address(i)} ({members[i][0]} {members[i][1]})" for i in sorted(peers - heard))
        raise EnvironmentProblem(f"multi_worker: {names} did not reach this worker at {address(me)} within "
                                 f"{timeout:g} s (distribute.connect_timeout); check the firewall and that "
                                 "every worker runs with the same cluster")


def _accept_hellos(listener, n: int) -> set[int]:
    """Indices announced by the peers that connected since the last call (anything else is ignored)."""
    got = set()
    while True:
        try:
            conn, _ = listener.accept()
        except (TimeoutError, BlockingIOError):
            return got
        with conn:
            conn.settimeout(1.0)
            try:
                words = conn.makefile("rb").readline(64).split()
                while conn.recv(64):  # wait for the peer to close first (see above)
                    pass
            except OSError:
                continue
            if len(words) == 2 and words[0] == b"dlrun" and words[1].isdigit() and int(words[1]) < n:
                got.add(int(words[1]))


def _multi_worker(cfg_distribute):
    import tensorflow as tf

    spec, task_type, index = _check_peers_once(cfg_distribute)
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(spec), task_type=task_type, task_id=index, rpc_layer="grpc")
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)


def _tpu(name: str | None):
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise EnvironmentProblem(f"distribute.strategy: tpu: no TPU {name or 'on this host'} could be used "
                                 f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); run on a TPU VM "
                                 "or set distribute.tpu to the TPU's name or grpc:// address") from None
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy) -> bool:
    """Whether this process writes the run directory: always, except on the non-chief workers of a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().jobs or resolver.task_type is None:
        return True
    if "chief" in resolver.cluster_spec().jobs:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


def check_batch(strategy, batch_size: int) -> None:
    """The global batch splits evenly into per-replica batches of at least one example."""
    replicas = strategy.num_replicas_in_sync
    kind = type(strategy).__name__
    if batch_size < replicas:
        raise ConfigError(f"data.batch_size: the global batch gives each of the {replicas} replicas of {kind} "
                          f"less than one example; received {batch_size} (use at least {replicas})")
    if batch_size % replicas:
        down = batch_size - batch_size % replicas
        raise ConfigError(f"data.batch_size: the global batch must divide evenly over the {replicas} replicas of "
                          f"{kind}; received {batch_size} (try {down} or {down + replicas})")

