"""TensorFlow Datasets by name, offline-safe: prepared data is used as is, a download runs only if the network answers."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Literal, Optional, Union
from urllib.parse import urlparse

from pydantic import Field

from runner.language.fields import PositiveInt
from runner.data.sources.common_fields import DataCommon, Splits, default_splits
from runner.data.sources.registry import SOURCES
from runner.kernel.errors import ConfigError, DataError

PROBE_TIMEOUT_S = 3.0
OFFLINE_ENV = "DLRUN_OFFLINE"  # set to 1 to treat the network as down (no probe, no download)


class TfdsData(DataCommon):
    source: Literal["tfds"]
    name: str = Field(pattern=r"^[A-Za-z0-9_]+(/[A-Za-z0-9_.-]+)?(:[0-9]+\.[0-9]+\.[0-9]+)?$",
                      description="TFDS name, optionally with config and version: imdb_reviews/plain_text:1.0.0")
    splits: Splits = default_splits("train[:90%]", "train[90%:]", "test")
    download: Union[Literal["auto"], bool] = Field(
        "auto", description="auto/true: download only if not prepared and the network answers a short probe; "
                            "false: never")
    data_dir: Optional[str] = Field(None, description="TFDS data_dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    image_size: Optional[list[PositiveInt]] = Field(
        None, min_length=2, max_length=2, description="[height, width] to resize images to (needed when their "
                                                      "sizes vary); null: as stored")
    mask_key: str = Field("segmentation_mask", description="segmentation: the feature holding the masks (resized "
                                                           "nearest-neighbour with the image)")
    class_names: Optional[list[str]] = Field(
        None, description="segmentation: names of the mask values 0..N-1 (the data set's metadata does not tell)")


def data_root(cfg: TfdsData) -> Path:
    return Path(cfg.data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets").expanduser()


def manual_dir(root: Path) -> Path:
    return root / "downloads" / "manual"


def prepared_dirs(root: Path, name: str) -> list[Path]:
    """Prepared `<name>[/<config>]/<version>` folders under `root`: a filesystem look, no TensorFlow import."""
    base, _, version = name.partition(":")
    folder = root / base
    patterns = [version, f"*/{version}"] if version else ["*", "*/*"]
    return sorted(p.parent for pattern in patterns for p in folder.glob(f"{pattern}/dataset_info.json"))


def _connect(host: str, port: int, answers: dict) -> None:
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            answers[host, port] = None
    except OSError as e:  # refused, unresolvable, unreachable, or no answer within the timeout
        answers[host, port] = e.strerror or str(e) or type(e).__name__


def network_problem(urls) -> str | None:
    """None if a download host accepts a TCP connection within PROBE_TIMEOUT_S, else why not."""
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        return f"{OFFLINE_ENV} is set"
    hosts = sorted({(u.hostname, u.port or (80 if u.scheme == "http" else 443))
                    for u in map(urlparse, urls) if u.hostname})
    if not hosts:
        return "the data set names no download host"
    answers: dict = {}
    # daemon threads bound the wait: create_connection's timeout does not cover a hanging DNS lookup
    threads = [threading.Thread(target=_connect, args=(*h, answers), daemon=True) for h in hosts]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + PROBE_TIMEOUT_S + 0.5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(answers.get(h, "") is None for h in hosts):
        return None
    reasons = ", ".join(f"{h}:{p} ({answers.get((h, p)) or 'no answer'})" for h, p in hosts)
    return f"the network does not answer within {PROBE_TIMEOUT_S:g} s: {reasons}"


def _offline_error(cfg: TfdsData, root: Path, reason: str, builder=None) -> DataError:
    base = cfg.name.partition(":")[0]
    folder = variant(builder) if builder is not None else f"{base}/<version>"
    files = sorted({_file_name(u, i) for u, i in _url_infos(builder).items()}) if builder is not None else []
    archives = f" ({', '.join(files)})" if files else ""
    return DataError(
        f"data.name: TFDS data set '{cfg.name}' is not prepared in {root} (looked for {root / folder}/"
        f"dataset_info.json) and cannot be downloaded: {reason}. Ways out:\n"
        f"  - copy a prepared {folder} folder (made by tfds on another machine) into {root} "
        f"(or point data.data_dir at it)\n"
        f"  - put the raw archives{archives} in {manual_dir(root)}/\n"
        f"  - run once on a machine with internet (data.download: auto) and copy {root / base} here")


def variant(builder) -> str:
    """`<name>[/<config>]/<version>`: where tfds keeps this builder's prepared files under the data_dir."""
    config = [builder.builder_config.name] if builder.builder_config is not None else []
    return "/".join([builder.name, *config, str(builder.version)])


def is_prepared(root: Path, builder) -> bool:
    return (root / variant(builder) / "dataset_info.json").is_file()


def _url_infos(builder) -> dict:
    try:
        return dict(builder.url_infos or {})
    except Exception:  # builders without a checksums file
        return {}


def _file_name(url: str, info) -> str:
    return getattr(info, "filename", None) or os.path.basename(urlparse(url).path)


def _builder(cfg: TfdsData, root: Path):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(cfg.name, data_dir=str(root))
    except tfds.core.registered.DatasetNotFoundError:
        from runner.kernel.registry import did_you_mean

        hint = did_you_mean(cfg.name.split("/")[0].split(":")[0], tfds.list_builders())
        raise ConfigError(f"data.name: unknown TFDS data set '{cfg.name}'{hint} "
                          f"(nor a prepared copy in {root})") from None
    except ValueError as e:  # a config or version the builder does not have
        raise ConfigError(f"data.name: {cfg.name!r}: {str(e).splitlines()[0]}") from None


def _prepare(cfg: TfdsData, root: Path, builder) -> None:
    """Prepare from the manual dir or a download; never lets tfds's downloader meet a dead network."""
    import tensorflow_datasets as tfds

    infos = _url_infos(builder)
    manual = manual_dir(root)
    if manual.is_dir() and any(manual.iterdir()):
        missing = sorted({_file_name(u, i) for u, i in infos.items()} - {p.name for p in manual.iterdir()})
        if missing:
            raise DataError(f"data.name: TFDS data set '{cfg.name}': the manual dir {manual} lacks "
                            f"{', '.join(missing)}; put every raw archive there, or empty it to download")
        from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

        try:
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
        except NonMatchingChecksumError as e:
            bad = next((name for name in sorted(_file_name(u, i) for u, i in infos.items()) if name in str(e)), "")
            raise DataError(f"data.name: TFDS data set '{cfg.name}': {manual / bad} is not the expected archive "
                            "(its checksum differs); replace it with the original file") from None
        return
    if cfg.download is False:
        raise _offline_error(cfg, root, "data.download is false", builder)
    urls = list(infos) or [builder.info.homepage or ""]
    if problem := network_problem(urls):
        raise _offline_error(cfg, root, problem, builder)
    builder.download_and_prepare(download_dir=str(root / "downloads"))


def _features(builder):
    keys = builder.info.supervised_keys
    if not keys or len(keys) != 2 or not all(isinstance(k, str) for k in keys):
        raise DataError(f"data.name: TFDS data set '{builder.info.full_name}' has no (input, label) "
                        f"supervised keys; dlrun reads supervised pairs")
    return keys, builder.info.features[keys[0]], builder.info.features[keys[1]]


def _mask_features(builder, cfg: TfdsData):
    """(image key, image feature, mask feature) of a segmentation data set, checked against data.mask_key."""
    from runner.kernel.registry import did_you_mean

    features = builder.info.features
    keys = builder.info.supervised_keys
    image_key = keys[0] if keys and isinstance(keys[0], str) else "image"
    if cfg.mask_key not in features or image_key not in features:
        missing = cfg.mask_key if cfg.mask_key not in features else image_key
        raise DataError(f"data.mask_key: TFDS data set '{builder.info.full_name}' has no feature {missing!r}"
                        f"{did_you_mean(missing, list(features))}; its features are {', '.join(features)}")
    if not cfg.class_names:
        raise ConfigError(f"data.class_names: a segmentation of TFDS data set '{builder.info.full_name}' needs the "
                          "names of its mask values 0..N-1 (its metadata does not list them)")
    return image_key, features[image_key], features[cfg.mask_key]


def info_from_builder(builder, cardinality: dict | None = None, image_size=None, cfg=None):
    """DataInfo from the builder's metadata: works offline from the builder code alone."""
    import tensorflow_datasets as tfds

    from runner.data.info import DataInfo

    if cfg is not None and cfg.task == "segmentation":
        _, fx, _ = _mask_features(builder, cfg)
        shape = (*image_size, fx.shape[-1]) if image_size else tuple(fx.shape)
        if any(d is None for d in shape):
            raise DataError(f"data.name: TFDS data set '{builder.info.full_name}' has images of varying shape "
                            f"{list(shape)}; set data.image_size: [height, width]")
        return DataInfo(shape, "float32", "segmentation", len(cfg.class_names), list(cfg.class_names),
                        cardinality or {}, (0.0, 255.0))
    _, fx, fy = _features(builder)
    if isinstance(fx, tfds.features.Text):
        shape, dtype, value_range = (), "string", None
    else:
        shape, dtype = tuple(fx.shape), "float32"
        value_range = (0.0, 255.0) if isinstance(fx, tfds.features.Image) else None
        if image_size and value_range:
            shape = (*image_size, *shape[2:])
        if any(d is None for d in shape):
            raise DataError(f"data.name: TFDS data set '{builder.info.full_name}' has inputs of varying shape "
                            f"{list(shape)}; dlrun batches fixed-shape inputs"
                            + ("; set data.image_size: [height, width]" if value_range else ""))
    if isinstance(fy, tfds.features.ClassLabel):
        return DataInfo(shape, dtype, "classification", fy.num_classes, list(fy.names), cardinality or {},
                        value_range)
    return DataInfo(shape, dtype, "regression", None, None, cardinality or {}, value_range)


def describe_tfds(cfg: TfdsData):
    """The DataInfo of `cfg` without loading or downloading anything."""
    return info_from_builder(_builder(cfg, data_root(cfg)), image_size=cfg.image_size, cfg=cfg)


def _split(builder, name: str, text: str, image_size=None, cfg=None):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    # dlrun's pipeline caches (data.cache); tfds's own auto-cache of small sets would hold a second copy
    read = tfds.ReadConfig(try_autocache=False)
    masks = cfg is not None and cfg.task == "segmentation"
    try:
        ds = builder.as_dataset(split=text, as_supervised=not masks, shuffle_files=False, read_config=read)
    except (ValueError, KeyError) as e:
        raise DataError(f"data.splits.{name}: {text!r}: {str(e).splitlines()[0]}") from None
    n = int(ds.cardinality())
    if n < 0:
        n = int(ds.reduce(0, lambda count, _: count + 1))
    if n == 0:
        raise DataError(f"data.splits.{name}: {text!r} selects no examples")
    if masks:
        image_key = _mask_features(builder, cfg)[0]
        return _mask_pairs(ds, image_key, cfg.mask_key, image_size), n
    ds = ds.map(lambda x, y: (x, tf.cast(y, tf.int64) if y.dtype.is_integer else tf.cast(y, tf.float32)))
    if image_size:  # before caching and batching; float32 out of resize, as keras's image loaders give
        ds = ds.map(lambda x, y: (tf.image.resize(x, image_size), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds, n


def _mask_pairs(ds, image_key: str, mask_key: str, image_size):
    """(image, mask of class ids) pairs; with image_size, the image resized bilinear and the mask nearest."""
    import tensorflow as tf

    def pair(example):
        image, mask = example[image_key], example[mask_key]
        if image_size:
            image = tf.image.resize(image, image_size)
            mask = tf.image.resize(mask, image_size, method="nearest")
        return image, tf.cast(mask[..., 0], tf.int64)

    return ds.map(pair, num_parallel_calls=tf.data.AUTOTUNE)


def ensure_prepared(cfg: TfdsData):
    """The builder of prepared data: prepared here, or from the manual dir, or downloaded if the network answers.

    Everything up to an actual download or preparation runs without importing TensorFlow."""
    root = data_root(cfg)
    manual = manual_dir(root)
    # a plain folder look first: no tfds import at all when the data may not be downloaded
    if (not prepared_dirs(root, cfg.name) and cfg.download is False
            and not (manual.is_dir() and any(manual.iterdir()))):
        raise _offline_error(cfg, root, "data.download is false")
    builder = _builder(cfg, root)
    if not is_prepared(root, builder):
        _prepare(cfg, root, builder)
    return builder


@SOURCES.register("tfds", config=TfdsData, describe=describe_tfds)
def load_tfds(cfg: TfdsData, seed: int):
    from runner.data.dataset import SPLITS, Data, adapt_sample

    builder = ensure_prepared(cfg)
    splits, counts = {}, {}
    for name in SPLITS:
        text = getattr(cfg.splits, name)
        if text is not None:
            splits[name], counts[name] = _split(builder, name, text, cfg.image_size, cfg)
    info = info_from_builder(builder, counts, cfg.image_size, cfg)
    return Data(info, splits, adapt_sample(splits["train"], cfg))
