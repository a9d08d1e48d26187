"""FID (Heusel et al. 2017) in the penultimate-layer feature space of a classifier, plus what that classifier
says about the samples: class agreement (conditional) and the class mix (unconditional)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from runner.kernel.errors import ConfigError

INCEPTION = "inception_v3"
INCEPTION_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) of the Gaussians fitted to two feature sets."""
    from scipy import linalg

    a, b = a.astype("float64"), b.astype("float64")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # a near-singular product (collapsed samples) is handled just below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root, _ = linalg.sqrtm(s_a @ s_b, disp=False)
    if not np.isfinite(root).all():  # a singular product: the usual offset on the diagonals
        offset = np.eye(len(s_a)) * 1e-6
        root = linalg.sqrtm((s_a + offset) @ (s_b + offset))
    root = np.real(root)  # imaginary parts are numerical noise of sqrtm
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2.0 * root))


class Features:
    """A classifier cut at its penultimate layer; `classify` gives its class ids."""

    def __init__(self, source: str):
        import keras

        self.source = source
        if source == INCEPTION:
            self.classifier = None
            self.features = _inception()
            return
        classifier = keras.saving.load_model(source, compile=False)
        self.classifier = classifier
        self.features = keras.Model(classifier.input, classifier.layers[-2].output, name="fid_features")

    def embed(self, images: np.ndarray) -> np.ndarray:
        if self.classifier is None:
            return _inception_embed(self.features, images)
        out = np.asarray(self.features.predict(images, batch_size=256, verbose=0))
        return out.reshape(len(out), -1)

    def classify(self, images: np.ndarray) -> np.ndarray | None:
        if self.classifier is None:
            return None
        return np.argmax(np.asarray(self.classifier.predict(images, batch_size=256, verbose=0)), axis=-1)


def _inception():
    import keras

    path = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / INCEPTION_WEIGHTS
    if not path.is_file():
        raise ConfigError(f"gan.fid.features: inception_v3 needs Keras's ImageNet weights in the Keras cache "
                          f"({path}), and dlrun does not download; copy the file there, or give a classifier "
                          "(a run directory, a .keras file or a .yaml spec)")
    return keras.applications.InceptionV3(weights=str(path), include_top=False, pooling="avg")


def _inception_embed(model, images: np.ndarray) -> np.ndarray:
    import keras
    import tensorflow as tf

    x = tf.image.resize(tf.convert_to_tensor(images, "float32"), (299, 299))
    if x.shape[-1] == 1:
        x = tf.repeat(x, 3, axis=-1)
    low, high = float(np.min(images)), float(np.max(images))
    x = (x - low) / max(high - low, 1e-6) * 255.0
    return np.asarray(model.predict(keras.applications.inception_v3.preprocess_input(x), batch_size=64, verbose=0))


def quality(features: Features, real: np.ndarray, generated: np.ndarray, labels: np.ndarray | None,
            num_classes: int | None) -> dict:
    """gan.fid, and what the classifier says about the samples: class_agreement or class_fractions."""
    out = {"fid": frechet_distance(features.embed(real), features.embed(generated))}
    predicted = features.classify(generated)
    if predicted is not None and num_classes:
        if labels is not None:
            out["class_agreement"] = float(np.mean(predicted == labels.reshape(-1)))
        else:
            out["class_fractions"] = [float(f) for f in np.bincount(predicted, minlength=num_classes)
                                      / len(predicted)]
    return out
