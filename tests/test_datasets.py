"""Data sets: shapes, determinism, the Keras split, CSV loading and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from initlab import datasets
from initlab._validation import DataError, ValidationError


@pytest.mark.parametrize("name", ["moons", "circles", "xor", "spirals", "gaussians"])
def test_generated_sets_are_balanced_2d_and_seeded(name):
    X, y = getattr(datasets, name)(n_samples=200, noise=0.1, seed=3)
    assert X.shape == (200, 2) and X.dtype == np.float32
    assert y.shape == (200,) and y.dtype == np.int64
    assert set(np.unique(y)) == {0, 1}
    assert 0.35 < y.mean() < 0.65
    X2, y2 = getattr(datasets, name)(n_samples=200, noise=0.1, seed=3)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    X3, _ = getattr(datasets, name)(n_samples=200, noise=0.1, seed=4)
    assert not np.array_equal(X, X3)


def test_moons_default_is_the_classic_100_points():
    X, y = datasets.moons()
    assert X.shape == (100, 2) and int(y.sum()) == 50


def test_bundled_sets():
    X, y = datasets.digits()
    assert X.shape == (1797, 64) and 0.0 <= X.min() and X.max() <= 1.0 and set(np.unique(y)) == set(range(10))
    X, y = datasets.breast_cancer()
    assert X.shape == (569, 30) and abs(float(X.mean())) < 1e-5


def test_validation_split_holds_out_the_last_fraction_like_keras():
    X = np.arange(100, dtype=np.float32).reshape(50, 2)
    y = np.arange(50)
    Xt, yt, Xv, yv = datasets.validation_split(X, y, 0.2)
    assert len(Xt) == 40 and len(Xv) == 10
    assert np.array_equal(yv, np.arange(40, 50))
    _, _, Xv, _ = datasets.validation_split(X[:7], y[:7], 0.2)  # int(7 * 0.8) = 5 rows kept
    assert len(Xv) == 2
    with pytest.raises(ValidationError, match="validation_split"):
        datasets.validation_split(X, y, 1.0)


def test_load_by_name_and_unknown_name():
    ds = datasets.load("circles", n_samples=50, noise=0.05, seed=1)
    assert ds.X.shape == (50, 2) and ds.n_classes == 2
    with pytest.raises(ValidationError, match="unknown dataset 'moon'; did you mean 'moons'?"):
        datasets.load("moon")


def _write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


USHAPE = "X,Y,class\n" + "\n".join(f"{i * 0.1:.2f},{(i % 3) * 0.5:.2f},{i % 2}" for i in range(12)) + "\n"


def test_load_csv_like_the_notebooks_ushape_file(tmp_path):
    X, y, classes = datasets.load_csv(_write(tmp_path, USHAPE))
    assert X.shape == (12, 2) and list(y[:4]) == [0, 1, 0, 1] and classes == ["0", "1"]


def test_load_csv_with_chosen_columns_and_string_labels(tmp_path):
    text = "a,b,label,c\n" + "\n".join(f"{i},{i * 2},{'cat' if i % 2 else 'dog'},{i * 3}" for i in range(6))
    X, y, classes = datasets.load_csv(_write(tmp_path, text), features=["c", "a"], target="label")
    assert classes == ["cat", "dog"]
    assert X[1].tolist() == [3.0, 1.0] and y[1] == 0


def test_load_csv_float_labels_are_the_same_class_as_ints(tmp_path):
    text = "x,y\n" + "\n".join(f"{i},{'1.0' if i % 2 else '0'}" for i in range(6))
    _, y, classes = datasets.load_csv(_write(tmp_path, text))
    assert classes == ["0", "1"] and list(y) == [0, 1, 0, 1, 0, 1]


@pytest.mark.parametrize("text,message", [
    (USHAPE.replace("0.30,0.00,1", "0.30,abc,1"), "line 5, column 'Y': not a number: 'abc'"),
    (USHAPE.replace("0.30,0.00,1", "0.30,nan,1"), "line 5, column 'Y': missing or infinite value"),
    (USHAPE.replace("0.30,0.00,1", "0.30,,1"), "line 5, column 'Y': not a number: ''"),
    (USHAPE.replace("0.30,0.00,1", "0.30,0.00"), "line 5 has 2 cells, the header has 3"),
    ("X,Y,class\n" + "1,2,0\n" * 8, "has one class only"),
    ("X,Y,class\n1,2,0\n2,3,1\n", "too few rows: 2 data rows, need at least 5"),
    ("", "the file is empty"),
    ("justone\n1\n2\n3\n4\n5\n", "needs at least two columns"),
])
def test_malformed_csv_names_the_problem(tmp_path, text, message):
    with pytest.raises(DataError) as err:
        datasets.load_csv(_write(tmp_path, text))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_csv_missing_file_and_missing_column(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        datasets.load_csv(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="no column 'clas'; did you mean 'class'?"):
        datasets.load_csv(_write(tmp_path, USHAPE), target="clas")


def test_csv_binary_garbage(tmp_path):
    path = tmp_path / "bin.csv"
    path.write_bytes(b"\xff\xfe\x00\x01" * 50)
    with pytest.raises(DataError, match="not a text CSV"):
        datasets.load_csv(path)


@pytest.mark.parametrize("seed", [0, 1, 7, 12345])
@pytest.mark.parametrize("n_samples, noise", [(100, 0.1), (101, 0.3), (7, 0.0)])
def test_moons_and_circles_draw_scikit_learns_points_without_importing_it(seed, n_samples, noise):
    from sklearn import datasets as skd

    X, y = datasets.moons(n_samples, noise, seed)
    Xs, ys = skd.make_moons(n_samples, noise=noise, random_state=seed)
    np.testing.assert_array_equal(X, Xs.astype(np.float32))
    np.testing.assert_array_equal(y, ys)
    X, y = datasets.circles(n_samples, noise, seed, factor=0.3)
    Xs, ys = skd.make_circles(n_samples, noise=noise, factor=0.3, random_state=seed)
    np.testing.assert_array_equal(X, Xs.astype(np.float32))
    np.testing.assert_array_equal(y, ys)


def test_importing_initlab_does_not_import_scikit_learn():
    import subprocess
    import sys

    code = "import sys, initlab, initlab.cli.main, initlab.experiments; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
