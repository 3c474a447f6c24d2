"""Built-in datasets that need no download: scikit-learn's bundled ones and seeded generators.

Pure: numpy and scikit-learn only (sklearn's ``load_*`` read files shipped inside the
package; ``fetch_*`` would download, so it is never used). Each loader takes the
parameters of its spec in app/ml/data_spec.py, where names, defaults and limits live, and
returns a ParsedDataset like an upload: x float32 (rows, *features); y int64 class labels
or float32 values. ``shapes`` tells what a loader will return without running it.
"""
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.ml.dataset_files import ParsedDataset


@dataclass(frozen=True)
class Shapes:
    rows: int
    feature_shape: tuple[int, ...]
    target_shape: tuple[int, ...]  # per row: () for one label or value
    target_kind: str  # integer | float
    num_classes: int | None  # classification only


@dataclass(frozen=True)
class Builtin:
    load: Callable[..., ParsedDataset]
    shapes: Callable[..., Shapes]
    task: str  # classification | regression
    description: str


def _labels(x: np.ndarray, y: np.ndarray, **meta) -> ParsedDataset:
    return ParsedDataset(x=np.ascontiguousarray(x, dtype=np.float32), y=y.astype(np.int64), **meta)


def _values(x: np.ndarray, y: np.ndarray, **meta) -> ParsedDataset:
    return ParsedDataset(x=np.ascontiguousarray(x, dtype=np.float32),
                         y=np.ascontiguousarray(y, dtype=np.float32), **meta)


# ---- scikit-learn's bundled datasets ----------------------------------------------

def _sklearn_datasets():
    """sklearn.datasets, imported on first use: the API starts without it (its import alone
    took 4.9-6.0 s on the 2-core dev VM, torch already loaded)."""
    from sklearn import datasets

    return datasets


def _bundled(loader: str):
    return getattr(_sklearn_datasets(), loader)()


def _bundled_classes(loader: str, image: bool = False) -> ParsedDataset:
    b = _bundled(loader)
    names = [v.item() if hasattr(v, "item") else v for v in b.target_names]
    x = b.data.reshape(-1, 1, 8, 8) if image else b.data  # digits: (rows, channels, h, w)
    features = None if image else [str(f) for f in b.feature_names]
    return _labels(x, b.target, classes=names, feature_names=features, target_names=["target"])


def load_diabetes() -> ParsedDataset:
    b = _bundled("load_diabetes")  # features already mean-centred and scaled by sklearn
    return _values(b.data, b.target, feature_names=[str(f) for f in b.feature_names],
                   target_names=["disease_progression"])


# ---- generated datasets -------------------------------------------------------------

def moons(*, n_samples: int, noise: float, seed: int) -> ParsedDataset:
    x, y = _sklearn_datasets().make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return _labels(x, y, classes=[0, 1])


def circles(*, n_samples: int, noise: float, factor: float, seed: int) -> ParsedDataset:
    x, y = _sklearn_datasets().make_circles(n_samples=n_samples, noise=noise, factor=factor,
                                            random_state=seed)
    return _labels(x, y, classes=[0, 1])


def blobs(*, n_samples: int, centers: int, n_features: int, cluster_std: float,
          seed: int) -> ParsedDataset:
    x, y = _sklearn_datasets().make_blobs(n_samples=n_samples, centers=centers, n_features=n_features,
                                          cluster_std=cluster_std, random_state=seed)
    return _labels(x, y, classes=list(range(centers)))


def regression(*, n_samples: int, n_features: int, n_informative: int | None, n_targets: int,
               noise: float, seed: int) -> ParsedDataset:
    informative = n_features if n_informative is None else n_informative
    x, y = _sklearn_datasets().make_regression(n_samples=n_samples, n_features=n_features,
                                               n_informative=informative, n_targets=n_targets,
                                               noise=noise, random_state=seed)
    return _values(x, y)  # y: (rows,) for one target, else (rows, n_targets)


def xor(*, n_samples: int, noise: float, seed: int) -> ParsedDataset:
    """Points uniform in [-1, 1]^2, labelled 1 where exactly one coordinate is positive."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n_samples, 2))
    y = (x[:, 0] > 0) ^ (x[:, 1] > 0)
    x += rng.normal(0.0, noise, size=x.shape)  # labels come from the clean points
    return _labels(x, y, classes=[0, 1])


def spirals(*, n_samples: int, n_classes: int, turns: float, noise: float, seed: int) -> ParsedDataset:
    """Interleaved spiral arms from the origin out to radius 1, one arm per class."""
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % n_classes  # as even as the count allows
    t = rng.uniform(0.0, 1.0, size=n_samples)  # position along the arm: radius
    angle = 2 * np.pi * (turns * t + y / n_classes)
    x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
    x += rng.normal(0.0, noise, size=x.shape)
    order = rng.permutation(n_samples)  # classes interleaved in the rows, not in blocks
    return _labels(x[order], y[order], classes=list(range(n_classes)))


def sine_sequence(*, n_samples: int, seq_len: int, period: float, noise: float,
                  seed: int) -> ParsedDataset:
    """Windows of a sine wave at random phases; the target is the value after the window."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0.0, 2 * np.pi, size=(n_samples, 1))
    steps = np.arange(seq_len + 1)
    series = np.sin(2 * np.pi * steps / period + phase)  # (rows, seq_len + 1)
    series += rng.normal(0.0, noise, size=series.shape)  # observations, target included
    return _values(series[:, :seq_len, None], series[:, seq_len])  # (rows, seq_len, 1), (rows,)


# ---- the registry -----------------------------------------------------------------

def _classes(rows: int, features: tuple[int, ...], k: int) -> Shapes:
    return Shapes(rows, features, (), "integer", k)


BUILTINS: dict[str, Builtin] = {
    "iris": Builtin(lambda: _bundled_classes("load_iris"), lambda: _classes(150, (4,), 3),
                    "classification", "Fisher's iris flowers: 4 measurements, 3 species."),
    "digits": Builtin(lambda: _bundled_classes("load_digits", image=True),
                      lambda: _classes(1797, (1, 8, 8), 10), "classification",
                      "Handwritten digits 0-9 as 8x8 images, one channel, pixel values 0-16."),
    "wine": Builtin(lambda: _bundled_classes("load_wine"), lambda: _classes(178, (13,), 3),
                    "classification", "Wines from three cultivars: 13 chemical measurements."),
    "breast_cancer": Builtin(lambda: _bundled_classes("load_breast_cancer"),
                             lambda: _classes(569, (30,), 2), "classification",
                             "Wisconsin diagnostic breast cancer: 30 features, malignant or benign."),
    "diabetes": Builtin(load_diabetes, lambda: Shapes(442, (10,), (), "float", None), "regression",
                        "Disease progression after one year from 10 baseline variables."),
    "moons": Builtin(moons, lambda n_samples, **_: _classes(n_samples, (2,), 2), "classification",
                     "Two interleaving half circles (sklearn make_moons)."),
    "circles": Builtin(circles, lambda n_samples, **_: _classes(n_samples, (2,), 2), "classification",
                       "A small circle inside a large one (sklearn make_circles)."),
    "xor": Builtin(xor, lambda n_samples, **_: _classes(n_samples, (2,), 2), "classification",
                   "XOR of the signs of two uniform coordinates; not linearly separable."),
    "spirals": Builtin(spirals, lambda n_samples, n_classes, **_: _classes(n_samples, (2,), n_classes),
                       "classification", "Interleaved spiral arms, one per class."),
    "blobs": Builtin(blobs, lambda n_samples, centers, n_features, **_:
                     _classes(n_samples, (n_features,), centers), "classification",
                     "Gaussian clusters, one per class (sklearn make_blobs)."),
    "regression": Builtin(regression, lambda n_samples, n_features, n_targets, **_: Shapes(
        n_samples, (n_features,), () if n_targets == 1 else (n_targets,), "float", None),
        "regression", "A random linear model plus Gaussian noise (sklearn make_regression)."),
    "sine_sequence": Builtin(sine_sequence, lambda n_samples, seq_len, **_: Shapes(
        n_samples, (seq_len, 1), (), "float", None), "regression",
        "Sine windows (rows, seq_len, 1) for recurrent nets; the target is the next value."),
}


def load(name: str, **params) -> ParsedDataset:
    """Generates (or reads from sklearn's package) the named builtin with these parameters."""
    return BUILTINS[name].load(**params)


def shapes(name: str, **params) -> Shapes:
    """What ``load(name, **params)`` returns, without generating it."""
    return BUILTINS[name].shapes(**params)
