"""Dataset parsing (app/ml/dataset_files.py), the split and the loss targets (app/ml/preprocessing.py)."""
import numpy as np
import pytest
import torch

from app.datasets.ingest import parse_csv, parse_npz
from app.ml.dataset_files import ParsedDataset, parse_inline
from app.ml.preprocessing import split_indices, targets_for_loss
from tests.ml.data_helpers import data_error, npz_bytes


# ---- CSV -------------------------------------------------------------------------

def test_csv_numeric_regression():
    ds = parse_csv(b"a,b,y\n1,2,0.5\n3,4.5,-1.25\n-1,0,2\n", ["y"])
    assert ds.x.dtype == np.float32 and ds.x.shape == (3, 2)
    np.testing.assert_array_equal(ds.x, [[1, 2], [3, 4.5], [-1, 0]])
    assert ds.y.dtype == np.float32 and ds.y.shape == (3,)
    np.testing.assert_array_equal(ds.y, [0.5, -1.25, 2])
    assert ds.feature_names == ["a", "b"] and ds.target_names == ["y"]
    assert ds.classes is None and ds.target_kind == "float"
    assert ds.class_labels() is None


def test_csv_integer_targets_are_int64_labels():
    ds = parse_csv(b"a,label\n0.1,2\n0.2,0\n0.3,1.0\n0.4,2\n", ["label"])
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, [2, 0, 1, 2])
    assert ds.target_kind == "integer"
    assert ds.class_labels() == [0, 1, 2]


def test_csv_target_in_the_middle_keeps_feature_order():
    ds = parse_csv(b"f1,t,f2,f3\n1,0,2,3\n4,1,5,6\n", ["t"])
    assert ds.feature_names == ["f1", "f2", "f3"]
    np.testing.assert_array_equal(ds.x, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(ds.y, [0, 1])


def test_csv_string_classes_are_sorted_and_indexed():
    ds = parse_csv(b"x1,x2,species\n1,2,dog\n3,4,cat\n5,6,ant\n7,8,dog\n9,0,cat\n", ["species"])
    assert ds.classes == ["ant", "cat", "dog"]
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, [2, 1, 0, 2, 1])
    assert ds.class_labels() == ["ant", "cat", "dog"]
    assert ds.target_kind == "integer"


def test_csv_strips_whitespace_bom_and_blank_lines():
    ds = parse_csv("\ufeff a , y \r\n 1.5 , 0 \r\n\r\n2.5,1\r\n".encode(), ["y"])
    assert ds.feature_names == ["a"]
    np.testing.assert_array_equal(ds.x, [[1.5], [2.5]])
    np.testing.assert_array_equal(ds.y, [0, 1])


def test_csv_multiple_integer_target_columns():
    ds = parse_csv(b"a,t1,b,t2\n1,0,2,1\n3,1,4,1\n5,0,6,0\n", ["t1", "t2"])
    assert ds.feature_names == ["a", "b"] and ds.target_names == ["t1", "t2"]
    assert ds.y.dtype == np.int64 and ds.y.shape == (3, 2)
    np.testing.assert_array_equal(ds.y, [[0, 1], [1, 1], [0, 0]])
    np.testing.assert_array_equal(ds.x, [[1, 2], [3, 4], [5, 6]])
    assert ds.classes is None and ds.class_labels() is None


def test_csv_multiple_target_columns_follow_the_requested_order():
    ds = parse_csv(b"a,t1,t2\n1,0.5,7\n2,1.5,8\n", ["t2", "t1"])
    assert ds.y.dtype == np.float32
    np.testing.assert_array_equal(ds.y, [[7, 0.5], [8, 1.5]])


def test_csv_multiple_target_columns_refuse_text():
    err = data_error(parse_csv, b"a,t1,t2\n1,0,x\n2,1,y\n", ["t1", "t2"])
    assert err.field == "target.t2"


@pytest.mark.parametrize("content, name", [
    (b"a,a,y\n1,2,0\n3,4,1\n", "'a'"),
    (b"a,y, y\n1,2,0\n3,4,1\n", "'y'"),
])
def test_csv_repeated_column_names_are_refused(content, name):
    """Columns are looked up by name: a repeat used to train on one column twice."""
    err = data_error(parse_csv, content, ["y"])
    assert err.field == "file" and name in err.message


def test_csv_missing_target_column():
    err = data_error(parse_csv, b"a,b\n1,2\n", ["y"])
    assert err.field == "target" and "'y'" in err.message and "a, b" in err.message


def test_csv_needs_a_target_and_a_feature():
    assert data_error(parse_csv, b"a,b\n1,2\n", []).field == "target"
    assert data_error(parse_csv, b"a,b\n1,2\n", ["a", "b"]).field == "target"


def test_csv_non_numeric_feature_names_the_column_and_row():
    err = data_error(parse_csv, b"a,b,y\n1,2,0\n3,oops,1\n", ["y"])
    assert err.field == "column.b"
    assert "row 3" in err.message and "'oops'" in err.message


def test_csv_empty_feature_cell_is_non_numeric():
    assert data_error(parse_csv, b"a,b,y\n1,,0\n", ["y"]).field == "column.b"


@pytest.mark.parametrize("bad", [b"nan", b"NaN", b"inf", b"-Infinity"])
def test_csv_nan_or_inf_feature(bad):
    err = data_error(parse_csv, b"a,b,y\n1,2,0\n" + bad + b",3,1\n", ["y"])
    assert err.field == "column.a" and "row 3" in err.message


def test_csv_nan_target():
    err = data_error(parse_csv, b"a,y\n1,0.5\n2,nan\n", ["y"])
    assert err.field == "target.y" and "row 3" in err.message


def test_csv_ragged_rows():
    err = data_error(parse_csv, b"a,b,y\n1,2,0\n3,4\n", ["y"])
    assert err.field == "file" and "row 3" in err.message
    err = data_error(parse_csv, b"a,b,y\n1,2,0,9\n", ["y"])
    assert err.field == "file"


@pytest.mark.parametrize("content", [b"", b"\n\n", b"a,b,y\n"])
def test_csv_empty_or_header_only(content):
    assert data_error(parse_csv, content, ["y"]).field == "file"


def test_csv_not_utf8():
    err = data_error(parse_csv, "a,y\n1,caf\u00e9\n".encode("latin-1"), ["y"])
    assert err.field == "file" and "UTF-8" in err.message


def test_csv_utf8_class_names():
    ds = parse_csv("a,y\n1,caf\u00e9\n2,th\u00e9\n".encode(), ["y"])
    assert ds.classes == ["caf\u00e9", "th\u00e9"]


# ---- inline -----------------------------------------------------------------------

def test_inline_lists():
    ds = parse_inline([[1, 2], [3, 4], [5, 6]], [0, 1, 0])
    assert ds.x.dtype == np.float32 and ds.x.shape == (3, 2)
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, [0, 1, 0])


def test_inline_integral_floats_are_labels_and_fractions_are_values():
    assert parse_inline([[1], [2]], [1.0, 0.0]).y.dtype == np.int64
    ds = parse_inline([[1], [2]], [1.5, 0.0])
    assert ds.y.dtype == np.float32
    np.testing.assert_array_equal(ds.y, [1.5, 0.0])


def test_inline_multi_dim_features_and_targets():
    ds = parse_inline([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], [[0.5, 1.5], [2.5, 3.5]])
    assert ds.x.shape == (2, 2, 2) and ds.y.shape == (2, 2) and ds.y.dtype == np.float32


def test_inline_1d_features_become_a_column():
    assert parse_inline([1.0, 2.0, 3.0], [0, 1, 0]).x.shape == (3, 1)


def test_inline_string_labels():
    ds = parse_inline([[0], [1], [2]], ["yes", "no", "yes"])
    assert ds.classes == ["no", "yes"]
    np.testing.assert_array_equal(ds.y, [1, 0, 1])
    assert ds.y.dtype == np.int64


@pytest.mark.parametrize("x", [[[1, 2], [3]], [[1, 2], 3], [[[1], [2]], [[3]]]])
def test_inline_ragged_rows(x):
    err = data_error(parse_inline, x, [0] * len(x))
    assert err.field == "x" and "same shape" in err.message


def test_inline_ragged_or_mixed_targets():
    assert data_error(parse_inline, [[1], [2]], [[1, 2], [3]]).field == "y"
    assert data_error(parse_inline, [[1], [2]], ["a", 1]).field == "y"


def test_inline_refusals():
    assert data_error(parse_inline, [["a"], ["b"]], [0, 1]).field == "x"
    assert data_error(parse_inline, [], []).field == "x"
    assert data_error(parse_inline, [[1], [2], [3]], [0, 1]).field == "y"
    assert data_error(parse_inline, [[1.0], [float("nan")]], [0, 1]).field == "x"
    assert data_error(parse_inline, [[1.0], [2.0]], [0.5, float("nan")]).field == "y"


# ---- digest ------------------------------------------------------------------------

def test_digest_is_equal_for_equal_content_from_any_source():
    csv = parse_csv(b"a,b,y\n1,2,0\n3,4,1\n5,6,2\n", ["y"])
    inline = parse_inline([[1, 2], [3, 4], [5, 6]], [0, 1, 2])
    npz = parse_npz(npz_bytes(x=np.array([[1, 2], [3, 4], [5, 6]], dtype=np.float64),
                              y=np.array([0, 1, 2], dtype=np.int32)))
    assert csv.digest() == inline.digest() == npz.digest()
    assert len(csv.digest()) == 64 and int(csv.digest(), 16) >= 0


def test_digest_is_equal_for_float_targets_from_any_source():
    csv = parse_csv(b"a,y\n1,0.5\n2,1.5\n", ["y"])
    inline = parse_inline([[1], [2]], [0.5, 1.5])
    assert csv.digest() == inline.digest()


def test_digest_ignores_the_uploaded_byte_order():
    x = np.array([[1.5, 2.0], [3.0, 4.25]])
    little = parse_npz(npz_bytes(x=x.astype("<f8"), y=np.array([0, 1], dtype="<i4")))
    big = parse_npz(npz_bytes(x=x.astype(">f8"), y=np.array([0, 1], dtype=">i4")))
    assert big.x.dtype == np.float32 and big.y.dtype == np.int64
    assert little.digest() == big.digest()


def test_digest_survives_the_stored_npz_round_trip():
    ds = parse_csv(b"a,b,y\n1,2,cat\n3,4,dog\n", ["y"])
    again = parse_npz(ds.to_npz())
    assert again.digest() == ds.digest()
    np.testing.assert_array_equal(again.x, ds.x)
    np.testing.assert_array_equal(again.y, ds.y)


def test_digest_differs_for_different_content():
    base = ParsedDataset(x=np.array([[1, 2], [3, 4]], dtype=np.float32), y=np.array([0, 1]))
    variants = [
        ParsedDataset(x=np.array([[1, 2], [3, 5]], dtype=np.float32), y=np.array([0, 1])),
        ParsedDataset(x=np.array([[1, 2], [3, 4]], dtype=np.float32), y=np.array([1, 0])),
        # same bytes, other shape
        ParsedDataset(x=np.array([[1, 2, 3, 4]], dtype=np.float32).reshape(1, 4), y=np.array([0, 1])),
        # same values, other dtype
        ParsedDataset(x=np.array([[1, 2], [3, 4]], dtype=np.float32), y=np.array([0, 1], dtype=np.float32)),
        # targets as a column
        ParsedDataset(x=np.array([[1, 2], [3, 4]], dtype=np.float32), y=np.array([[0], [1]])),
    ]
    digests = {base.digest()} | {v.digest() for v in variants}
    assert len(digests) == 1 + len(variants)


def test_digest_ignores_memory_layout():
    x = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(3, 2))
    a = ParsedDataset(x=x, y=np.arange(3))
    b = ParsedDataset(x=np.ascontiguousarray(x), y=np.arange(3))
    assert a.digest() == b.digest()


# ---- loss targets and splits ---------------------------------------------------------

def test_cross_entropy_targets_are_int64_1d():
    t = targets_for_loss(np.array([2, 0, 1], dtype=np.int64), "cross_entropy")
    assert t.dtype == torch.int64 and t.shape == (3,)
    assert t.tolist() == [2, 0, 1]


@pytest.mark.parametrize("dtype", [np.float32, np.int64])  # soft labels; one-hot rows sent as whole numbers
def test_cross_entropy_probability_rows_are_float32(dtype):
    t = targets_for_loss(np.array([[0.0, 1.0], [1.0, 0.0]], dtype=dtype), "cross_entropy")
    assert t.dtype == torch.float32 and t.shape == (2, 2)
    assert t.tolist() == [[0.0, 1.0], [1.0, 0.0]]


@pytest.mark.parametrize("loss", ["mse", "l1", "bce_with_logits"])
def test_elementwise_targets_are_float_columns(loss):
    t = targets_for_loss(np.array([1, 0, 1], dtype=np.int64), loss)
    assert t.dtype == torch.float32 and t.shape == (3, 1)
    assert t[:, 0].tolist() == [1.0, 0.0, 1.0]
    t = targets_for_loss(np.array([0.5, 1.5], dtype=np.float32), loss)
    assert t.dtype == torch.float32 and t.shape == (2, 1)


def test_multi_column_targets_keep_their_shape():
    t = targets_for_loss(np.ones((4, 3), dtype=np.float32), "mse")
    assert t.dtype == torch.float32 and t.shape == (4, 3)


def test_split_is_deterministic_disjoint_and_covering():
    a_train, a_val = split_indices(50, 0.2, torch.Generator().manual_seed(7))
    b_train, b_val = split_indices(50, 0.2, torch.Generator().manual_seed(7))
    assert torch.equal(a_train, b_train) and torch.equal(a_val, b_val)
    assert len(a_val) == 10 and len(a_train) == 40
    assert set(a_train.tolist()).isdisjoint(a_val.tolist())
    assert sorted(a_train.tolist() + a_val.tolist()) == list(range(50))
    # it is the seeded generator's permutation, so other seeds give other splits
    c_train, c_val = split_indices(50, 0.2, torch.Generator().manual_seed(8))
    assert not torch.equal(a_val, c_val)
    # and it does not touch the global generator
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    split_indices(50, 0.2, torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), before)


def test_split_draws_a_permutation_from_the_generator():
    gen = torch.Generator().manual_seed(3)
    train, val = split_indices(20, 0.25, gen)
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(3))
    assert torch.equal(val, perm[:5]) and torch.equal(train, perm[5:])


@pytest.mark.parametrize("n, split", [(50, 0.0), (9, 0.1)])
def test_split_without_validation_rows_keeps_order_and_draws_nothing(n, split):
    gen = torch.Generator().manual_seed(1)
    state = gen.get_state()
    train, val = split_indices(n, split, gen)
    assert val is None and torch.equal(train, torch.arange(n))
    assert torch.equal(gen.get_state(), state)


def test_csv_empty_target_cell_is_an_error_not_a_class():
    err = data_error(parse_csv, b"a,y\n1,1.5\n2,\n3,2.5\n", ["y"])
    assert err.field == "target.y" and "row 3 is empty" in err.message


def test_csv_row_numbers_count_blank_lines():
    err = data_error(parse_csv, b"a,y\n1,0\n\n\nred,1\n", ["y"])
    assert err.field == "column.a" and "row 5" in err.message


def test_inline_whole_number_targets_are_integers_in_any_shape():
    ds = parse_inline([[0.0], [1.0]], [[0.0, 1.0], [1.0, 0.0]])
    assert ds.y.dtype == np.int64 and ds.target_kind == "integer"
    same = parse_csv(b"f,t1,t2\n0,0,1\n1,1,0\n", ["t1", "t2"])
    assert same.digest() == ds.digest()
