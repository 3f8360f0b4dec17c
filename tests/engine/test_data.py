"""Tests for engine.data: the synthetic datasets, the split/standardize/scale pipeline, CSV."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import ConfigError, DataConfig
from engine.data import DATASETS, Dataset, make_dataset, read_csv

CLASSIFICATION = [k for k, s in DATASETS.items() if s.task == "classification"]
REGRESSION = [k for k, s in DATASETS.items() if s.task == "regression"]


def _make(key: str, seed: int = 0, n: int = 101, noise: float = 0.1, k: int = 3):
    return DATASETS[key].make(np.random.default_rng(seed), n, noise, k)


def _write(tmp_path: Path, text: str, name: str = "data.csv", bom: bool = False) -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def _csv_config(path: Path, **kw) -> DataConfig:
    return DataConfig(dataset="csv", csv_path=str(path), **kw)


# -- the registry -------------------------------------------------------------------------
def test_registry_lists_the_datasets_in_menu_order():
    keys = ["circle", "xor", "gaussians", "spiral", "moons", "plane", "ripple"]
    assert list(DATASETS) == keys
    assert REGRESSION == ["plane", "ripple"]


@pytest.mark.parametrize("key", DATASETS)
def test_spec_is_described_for_the_window(key):
    spec = DATASETS[key]
    assert spec.name == key
    assert spec.task in ("classification", "regression")
    assert spec.description and "\n" not in spec.description
    DataConfig(dataset=key).validate()  # config accepts every registry key


@pytest.mark.parametrize("key", DATASETS)
def test_make_returns_2d_points_and_targets(key):
    x, y = _make(key)
    assert x.shape == (101, 2) and x.dtype == np.float64
    assert y.shape == (101,)
    assert np.isfinite(x).all() and np.isfinite(y).all()
    assert np.abs(x).max() < 8.0  # playground-sized inputs
    if DATASETS[key].task == "classification":
        assert y.dtype == np.int64
    else:
        assert y.dtype == np.float64


@pytest.mark.parametrize("key", CLASSIFICATION)
@pytest.mark.parametrize("k", [2, 3, 5])
def test_classes_are_balanced(key, k):
    _, y = _make(key, n=101, k=k)
    expected = k if key == "spiral" else 2
    counts = np.bincount(y, minlength=expected)
    assert len(counts) == expected and y.min() == 0
    assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("key", DATASETS)
def test_same_seed_gives_identical_data(key):
    a = make_dataset(DataConfig(dataset=key, n_samples=200), seed=7)
    b = make_dataset(DataConfig(dataset=key, n_samples=200), seed=7)
    for name in ("x_train", "y_train", "x_val", "y_val", "mean", "std"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name


@pytest.mark.parametrize("key", DATASETS)
def test_different_seed_gives_different_points(key):
    xa, _ = _make(key, seed=1)
    xb, _ = _make(key, seed=2)
    assert not np.array_equal(xa, xb)


@pytest.mark.parametrize("key", DATASETS)
def test_noise_changes_the_data(key):
    xa, ya = _make(key, noise=0.0)
    xb, yb = _make(key, noise=0.3)
    assert not (np.array_equal(xa, xb) and np.array_equal(ya, yb))


def test_noise_free_sets_are_separable_where_they_should_be():
    x, y = _make("circle", noise=0.0)
    r = np.hypot(x[:, 0], x[:, 1])
    assert r[y == 0].max() < r[y == 1].min()
    x, y = _make("xor", noise=0.0)
    assert np.array_equal(y == 1, x[:, 0] * x[:, 1] > 0)
    x, y = _make("plane", noise=0.0)
    assert np.allclose(y, 0.1 * x[:, 0] - 0.05 * x[:, 1])


# -- make_dataset -------------------------------------------------------------------------
@pytest.mark.parametrize("key", DATASETS)
def test_dataset_arrays_are_frozen_contiguous_copies(key):
    ds = make_dataset(DataConfig(dataset=key, n_samples=100), seed=0)
    ydtype = np.int64 if ds.task == "classification" else np.float64
    for name in ("x_train", "x_val", "mean", "std", "scale", "y_train", "y_val"):
        a = getattr(ds, name)
        assert a.flags.c_contiguous and not a.flags.writeable, name
        assert a.dtype == (ydtype if name.startswith("y") else np.float64), name
    with pytest.raises(ValueError):
        ds.x_train[0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.task = "regression"  # type: ignore[misc]
    assert ds.n_features == 2 and ds.feature_names == ("x1", "x2")


def test_synthetic_class_names_and_counts():
    ds = make_dataset(DataConfig(dataset="spiral", n_classes=4, n_samples=100), seed=0)
    assert ds.n_classes == 4 and ds.class_names == ("0", "1", "2", "3")
    ds = make_dataset(DataConfig(dataset="moons", n_classes=4, n_samples=100), seed=0)
    assert ds.n_classes == 2 and ds.class_names == ("0", "1")
    ds = make_dataset(DataConfig(dataset="ripple", n_samples=100), seed=0)
    assert ds.task == "regression" and ds.n_classes == 0 and ds.class_names == ()


@pytest.mark.parametrize(
    ("n", "fraction", "n_val"),
    [(600, 0.2, 120), (100, 0.0, 0), (101, 0.5, 50), (10, 0.89, 9), (2, 0.89, 1)],
)
def test_split_sizes(n, fraction, n_val):
    ds = make_dataset(DataConfig(dataset="circle", n_samples=n, validation_fraction=fraction), 0)
    assert ds.x_val.shape == (n_val, 2) and ds.y_val.shape == (n_val,)
    assert ds.x_train.shape == (n - n_val, 2) and len(ds.x_train) >= 1


def test_split_keeps_every_point_once():
    config = DataConfig(dataset="spiral", n_samples=300, standardize=False)
    x, y = _make("spiral", seed=3, n=300, noise=config.noise, k=config.n_classes)
    ds = make_dataset(config, seed=3)
    got = np.concatenate((ds.x_train, ds.x_val))
    assert np.array_equal(np.sort(got, axis=0), np.sort(x, axis=0))
    assert np.array_equal(np.bincount(np.concatenate((ds.y_train, ds.y_val))), np.bincount(y))
    assert not np.array_equal(got, x)  # shuffled


@pytest.mark.parametrize("key", DATASETS)
def test_standardizing_uses_the_training_part(key):
    ds = make_dataset(DataConfig(dataset=key, n_samples=500), seed=1)
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, rtol=1e-12)
    assert not np.allclose(ds.x_val.mean(axis=0), 0.0, atol=1e-12)  # not fitted on it


def test_without_standardizing_inputs_are_the_raw_points():
    ds = make_dataset(DataConfig(dataset="plane", standardize=False), seed=0)
    assert np.array_equal(ds.mean, [0.0, 0.0]) and np.array_equal(ds.std, [1.0, 1.0])
    assert np.abs(ds.x_train).max() > 5.0  # still in [-6, 6]


@pytest.mark.parametrize("feature", [0, 1])
@pytest.mark.parametrize("factor", [100.0, 0.01])
def test_scale_factor_multiplies_one_features_spread(feature, factor):
    plain = make_dataset(DataConfig(dataset="gaussians"), seed=0)
    bad = make_dataset(
        DataConfig(dataset="gaussians", scale_feature=feature, scale_factor=factor), seed=0
    )
    ratio = bad.x_train.std(axis=0) / plain.x_train.std(axis=0)
    expected = np.where(np.arange(2) == feature, factor, 1.0)
    np.testing.assert_allclose(ratio, expected, rtol=1e-12)
    assert bad.scale[feature] == factor


def test_transform_maps_raw_coordinates_like_the_training_inputs(tmp_path):
    rows = "\n".join(f"{i * 0.5},{i * i - 3.0},{i % 2}" for i in range(12))
    path = _write(tmp_path, "a,b,label\n" + rows + "\n")
    x_raw, *_ = read_csv(path)
    ds = make_dataset(_csv_config(path, scale_feature=1, scale_factor=10.0), seed=0)
    mapped = ds.transform(x_raw)
    both = np.concatenate((ds.x_train, ds.x_val))
    np.testing.assert_allclose(np.sort(mapped, axis=0), np.sort(both, axis=0), rtol=1e-12)
    assert mapped.flags.writeable


def test_scale_feature_must_name_a_feature():
    with pytest.raises(ConfigError) as err:
        make_dataset(DataConfig(dataset="xor", scale_feature=5), seed=0)
    assert str(err.value) == "data.scale_feature must be < number of features (2), got 5"


def test_unknown_dataset_is_rejected_by_name():
    with pytest.raises(ConfigError, match="data.dataset .*'spirals'"):
        make_dataset(DataConfig(dataset="spirals"), seed=0)


# -- CSV: good files ----------------------------------------------------------------------
def test_csv_text_labels_map_to_sorted_classes(tmp_path):
    path = _write(tmp_path, "x1,x2,animal\n1,2,dog\n3,4,cat\n5,6,emu\n7,8,cat\n")
    x, y, task, features, target, classes = read_csv(path)
    assert task == "classification" and target == "animal" and features == ("x1", "x2")
    assert classes == ("cat", "dog", "emu")
    assert y.tolist() == [1, 0, 2, 0] and y.dtype == np.int64
    assert x.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]] and x.dtype == np.float64


def test_csv_integer_labels_are_classes_in_numeric_order(tmp_path):
    path = _write(tmp_path, "a,b\n0.5,10\n1.5,2\n2.5,3\n3.5,10\n")
    _, y, task, _, _, classes = read_csv(path)
    assert task == "classification" and classes == ("2", "3", "10")
    assert y.tolist() == [2, 0, 1, 2]


def test_csv_real_target_is_regression(tmp_path):
    path = _write(tmp_path, "a,b,price\n1,2,3.25\n4,5,-6.5\n7,8,0\n")
    x, y, task, features, target, classes = read_csv(path)
    assert task == "regression" and classes == () and y.dtype == np.float64
    assert y.tolist() == [3.25, -6.5, 0.0]


def test_csv_many_integer_values_are_regression(tmp_path):
    rows = "".join(f"{i},{i * 3}\n" for i in range(21))
    assert read_csv(_write(tmp_path, "a,y\n" + rows))[2] == "regression"
    rows = "".join(f"{i},{i % 20}\n" for i in range(40))
    assert read_csv(_write(tmp_path, "a,y\n" + rows))[2] == "classification"


def test_csv_task_can_be_forced(tmp_path):
    path = _write(tmp_path, "a,y\n1,0\n2,1\n3,1\n")
    _, y, task, *_ = read_csv(path, task="regression")
    assert task == "regression" and y.tolist() == [0.0, 1.0, 1.0]
    path = _write(tmp_path, "a,y\n1,0.5\n2,1.5\n3,0.5\n")
    _, y, task, _, _, classes = read_csv(path, task="classification")
    assert task == "classification" and classes == ("0.5", "1.5") and y.tolist() == [0, 1, 0]


def test_csv_target_column_by_name(tmp_path):
    path = _write(tmp_path, "a,kind,b\n1,x,2\n3,y,4\n")
    x, y, _, features, target, classes = read_csv(path, target="kind")
    assert features == ("a", "b") and target == "kind" and classes == ("x", "y")
    assert x.tolist() == [[1, 2], [3, 4]]


def test_csv_semicolons_bom_crlf_quotes_and_blank_lines(tmp_path):
    text = 'x1;x2;"y"\r\n1.5;-2;a\r\n3;"4e-1";b\r\n\r\n  \r\n'
    x, y, task, features, target, classes = read_csv(_write(tmp_path, text, bom=True))
    assert features == ("x1", "x2") and target == "y"  # no BOM glued to "x1"
    assert x.tolist() == [[1.5, -2.0], [3.0, 0.4]] and classes == ("a", "b")


def test_csv_delimiter_inside_labels_does_not_confuse_the_sniffer(tmp_path):
    _, _, _, features, _, classes = read_csv(_write(tmp_path, "a;b;k\n1;2;x,y\n3;4;z,w\n"))
    assert features == ("a", "b") and classes == ("x,y", "z,w")
    _, _, _, features, _, classes = read_csv(_write(tmp_path, 'a,b,k\n1,2,"x;y"\n3,4,"z"\n'))
    assert features == ("a", "b") and classes == ("x;y", "z")


def test_csv_bom_with_commas(tmp_path):
    _, _, _, features, _, _ = read_csv(_write(tmp_path, "h1,h2,t\n1,2,a\n3,4,b\n", bom=True))
    assert features == ("h1", "h2")


def test_make_dataset_from_csv(tmp_path):
    rows = "".join(f"{i},{2 * i},{i % 3},{'abc'[i % 3]}\n" for i in range(30))
    path = _write(tmp_path, "p,q,r,cls\n" + rows)
    config = _csv_config(path, validation_fraction=0.2, scale_feature=2, scale_factor=3.0)
    ds = make_dataset(config, seed=4)
    assert isinstance(ds, Dataset)
    assert ds.n_features == 3 and ds.feature_names == ("p", "q", "r")
    assert ds.class_names == ("a", "b", "c") and ds.n_classes == 3
    assert ds.x_train.shape == (24, 3) and ds.x_val.shape == (6, 3)
    assert make_dataset(config, seed=4).x_train.tobytes() == ds.x_train.tobytes()
    with pytest.raises(ConfigError, match=r"number of features \(3\), got 3"):
        make_dataset(dataclasses.replace(config, scale_feature=3), seed=4)


def test_constant_csv_feature_is_not_divided_by_zero(tmp_path):
    path = _write(tmp_path, "a,const,y\n1,5,0\n2,5,1\n3,5,0\n4,5,1\n")
    ds = make_dataset(_csv_config(path, validation_fraction=0.0), seed=0)
    assert np.isfinite(ds.x_train).all() and ds.std[1] == 1.0
    assert np.all(ds.x_train[:, 1] == 0.0)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e300, 1e300), st.floats(-1e300, 1e300)), min_size=2))
def test_csv_numbers_round_trip_exactly(tmp_path_factory, points):
    rows = "".join(f"{a!r},{b!r}\n" for a, b in points)
    path = _write(tmp_path_factory.mktemp("rt"), "a,y\n" + rows)
    x, y, *_ = read_csv(path, task="regression")
    assert x[:, 0].tolist() == [a for a, _ in points]
    assert y.tolist() == [b for _, b in points]


# -- CSV: bad files -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "data.csv: the file is empty"),
        ("\n \n\n", "data.csv: the file is empty"),
        ("x1,x2,y\n", "data.csv: has a header but no data rows"),
        ("x1,x2,y\n1,2,a\n", "data.csv: has only 1 data row"),
        ("x1,x2,y\n1,2,a\n3,abc,b\n", "data.csv line 3, column 'x2': 'abc' is not a number"),
        ("x1,x2,y\n1,2,a\n\n\n1,,b\n", "data.csv line 5, column 'x2': '' is not a number"),
        ("x1,x2,y\n1,2,a\n3,4\n", "data.csv line 3: expected 3 values (as in the header), found 2"),
        ("x1,x2,y\n1,2,a\n3,4,b,5\n", "data.csv line 3: expected 3 values"),
        ("x1,x2,y\n1,2,a\n3,4,a\n", "data.csv: column 'y' has only one class ('a')"),
        ("x1,x2,y\n1,nan,a\n3,4,b\n", "data.csv line 2, column 'x2': 'nan' is not a finite number"),
        ("x1,x2,y\n1,2,0.5\n3,4,inf\n", "data.csv line 3, column 'y': 'inf' is not a finite"),
        ("1,2,3\n4,5,6\n7,8,9\n", "data.csv line 1: the first line must be a header"),
        ("x,x,y\n1,2,a\n3,4,b\n", "data.csv line 1: column name 'x' appears twice"),
        (",x,y\n1,2,a\n3,4,b\n", "data.csv line 1: column 1 has no name"),
        ("label\na\nb\n", "needs at least one feature column and a target column"),
        ('x,y\n1,"a\n2,b\n3,c\n', "data.csv line 2: unexpected end of data (a quoted field"),
        ('x,y\n1,"a"b\n2,c\n', "data.csv line 2: ',' expected after '\"'"),
    ],
)
def test_bad_csv_is_reported_with_file_line_and_column(tmp_path, text, expected):
    with pytest.raises(ConfigError) as err:
        read_csv(_write(tmp_path, text))
    assert expected in str(err.value)


def test_missing_target_column_lists_the_columns(tmp_path):
    path = _write(tmp_path, "x1,x2,y\n1,2,a\n3,4,b\n")
    with pytest.raises(ConfigError) as err:
        read_csv(path, target="label")
    assert str(err.value) == "data.csv: no column named 'label'; the columns are x1, x2, y"


def test_text_regression_target_is_named(tmp_path):
    path = _write(tmp_path, "x,y\n1,2\n3,high\n")
    with pytest.raises(ConfigError, match=r"line 3, column 'y': 'high' is not a number"):
        read_csv(path, task="regression")


def test_missing_file_and_folder_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.csv: no such file"):
        read_csv(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match="is a folder"):
        read_csv(tmp_path)
    with pytest.raises(ConfigError, match=r"nope\.csv: no such file"):
        make_dataset(_csv_config(tmp_path / "nope.csv"), seed=0)


def test_non_utf8_file_is_named(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes("x,y\n1,a\n2,b\n".encode("utf-16"))
    with pytest.raises(ConfigError, match="data.csv: not a UTF-8 text file"):
        read_csv(path)


def test_unknown_task_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="csv_task .*'clustering'"):
        read_csv(_write(tmp_path, "x,y\n1,a\n2,b\n"), task="clustering")
