"""get_strategy(cfg): the tf.distribute strategy the spec asks for, resolved with explicit branches."""

from __future__ import annotations

from runner.errors import ConfigError


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


def get_strategy(cfg_distribute):
    import tensorflow as tf

    kind = cfg_distribute.strategy
    gpus = tf.config.list_logical_devices("GPU")
    if kind == "auto":
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "one_device":
        device = (cfg_distribute.devices or [gpus[0].name if gpus else "/cpu:0"])[0]
        return tf.distribute.OneDeviceStrategy(device)
    if kind == "mirrored":
        devices = cfg_distribute.devices
        if cfg_distribute.cpu_replicas:
            devices = _split_cpu(cfg_distribute.cpu_replicas)
        return tf.distribute.MirroredStrategy(devices=devices)
    raise ConfigError(f"distribute.strategy: unsupported strategy {kind!r}")


def describe(strategy) -> dict:
    return {"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync}
