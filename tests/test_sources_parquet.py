"""Parquet files as a source (issue #32), written by pyarrow from generated images: Hugging Face's ``{bytes, path}``
image structs and plain binary columns, string and integer labels; every row once per epoch over 1-3 ranks,
the row groups read in windows, ``len`` from the footers, resume, bad rows named by file and row."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import coordinate_image, ranks_epoch
from dali_multicrop import DaliMultiCropLoader, ImageDecodeError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from dali_multicrop.sources import ParquetTable  # noqa: E402
from dali_multicrop.sources.epochs import ShardPlan  # noqa: E402

CROPS = "2x32,2x16"
FILES, ROWS, GROUP = 3, 20, 6  # rows per file, rows per row group (the last of each file shorter)


def jpeg(k: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(coordinate_image(24 + k % 9, 32 + k % 5)).save(out, "JPEG", quality=95)
    return out.getvalue()


def write(folder, images=None, labels=None, struct=True, name="train"):
    """``FILES`` Parquet files of ``ROWS`` rows each (row ``i`` overall: ``images[i]``, ``labels[i]``)."""
    n = FILES * ROWS
    images = images if images is not None else [jpeg(i) for i in range(n)]
    labels = labels if labels is not None else [f"class-{i % 4}" for i in range(n)]
    for f in range(FILES):
        rows = range(f * ROWS, (f + 1) * ROWS)
        column = ([None if images[i] is None else {"bytes": images[i], "path": f"{i}.jpg"} for i in rows] if struct
                  else [images[i] for i in rows])
        table = pa.table({"image": column, "label": [labels[i] for i in rows]})
        pq.write_table(table, folder / f"{name}-{f:05d}.parquet", row_group_size=GROUP)
    return str(folder / f"{name}-*.parquet")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write(tmp_path_factory.mktemp("parquet"))


def indices_of(loader):
    return [int(i) for batch in loader for i in batch.indices]


def test_every_row_once_per_epoch_with_its_label_over_one_to_three_ranks(files):
    n = FILES * ROWS
    for ranks in (1, 2, 3):
        loaders = [DaliMultiCropLoader(f"parquet:{files}", crops=CROPS, batch_size=5, device="cpu", seed=3,
                                       shard_id=r, num_shards=ranks, num_threads=1) for r in range(ranks)]
        assert len({len(loader) for loader in loaders}) == 1  # equal batch counts on every rank
        for epoch in (0, 1):
            assert sorted(ranks_epoch(loaders, epoch, lambda i: i % 4)) == list(range(n)), (ranks, epoch)
        assert next(iter(loaders[0])).crops[0].shape[1:] == (3, 32, 32)
        for loader in loaders:
            loader.close()
    table = loaders[0].source.dataset
    assert table.classes == ("class-0", "class-1", "class-2", "class-3")


def test_each_rank_reads_only_the_row_groups_of_its_own_rows(files, monkeypatch):
    """Ranks take contiguous stretches of the block order: with 3 ranks each reads about a third of the row groups
    (those its rows lie in, each once), not all of them; the loader gives the table its rank's rows as the plan to
    read ahead."""
    reads: dict[int, list[int]] = {}
    plans: dict[int, list[int]] = {}
    read_block, plan_reads = ParquetTable._read_block, ParquetTable.plan_reads

    def counted(self, block):
        reads.setdefault(id(self), []).append(block)
        return read_block(self, block)

    def planned(self, indices):
        plans.setdefault(id(self), []).extend(int(i) for i in indices)
        return plan_reads(self, indices)

    monkeypatch.setattr(ParquetTable, "plan_reads", planned)

    monkeypatch.setattr(ParquetTable, "_read_block", counted)
    ranks, window = 3, 2
    loaders = [DaliMultiCropLoader(ParquetTable(files, shuffle_window=window), crops=CROPS, batch_size=4,
                                   device="cpu", seed=3, shard_id=r, num_shards=ranks, num_threads=1)
               for r in range(ranks)]
    table = loaders[0].source.dataset
    groups = len(table.row_group_sizes)
    starts = np.concatenate([[0], np.cumsum(table.row_group_sizes)])
    everything = []
    for loader in loaders:
        mine = ranks_epoch([loader], 0)
        everything += mine
        read = reads[id(loader.source.dataset)]
        assert sorted(read) == sorted(set(np.searchsorted(starts, mine, side="right") - 1))  # its own, each once
        assert len(read) <= groups // ranks + 2 * window < groups
        assert plans[id(loader.source.dataset)] == mine
        loader.close()
    assert sorted(everything) == list(range(FILES * ROWS))


def test_the_next_row_groups_of_the_plan_are_read_ahead_in_the_background(files, monkeypatch):
    """After plan_reads, the first fetch from a row group has the next shuffle_window row groups of the plan read by
    the read-ahead thread; a read that fails there is read again, by the fetch that needs it."""
    import threading
    import time

    table = ParquetTable(files, shuffle_window=2)
    order = table.epoch_order(3, 0)[7:]  # a resumed epoch's rest
    starts = np.concatenate([[0], np.cumsum(table.row_group_sizes)])
    blocks = (np.searchsorted(starts, order, side="right") - 1).tolist()
    sequence = list(dict.fromkeys(blocks))  # the row groups in the order of their first fetch
    reads, failed = [], []
    read_block = ParquetTable._read_block

    def recorded(self, block):
        reads.append((block, threading.current_thread().name))
        if block == sequence[2] and not failed:
            failed.append(block)
            raise OSError("a flaky read")
        return read_block(self, block)

    monkeypatch.setattr(ParquetTable, "_read_block", recorded)
    here, ahead = threading.current_thread().name, "dali-multicrop-read-ahead"

    def fetch(position):
        """Fetches a row of row group ``sequence[position]``, then waits for the read-ahead thread."""
        image, _ = table[int(order[blocks.index(sequence[position])])]
        deadline = time.monotonic() + 30
        while table._reading and time.monotonic() < deadline:
            time.sleep(0.01)
        return bytes(image)

    table.plan_reads(order)
    fetch(0)
    assert reads[0] == (sequence[0], here)  # then the next two, read ahead at once (the third's read fails)
    assert sorted(reads[1:]) == sorted([(sequence[1], ahead), (sequence[2], ahead)])
    assert fetch(2)[:2] == b"\xff\xd8"  # read again by the fetch that needs it, then its own next two ahead
    assert reads[3] == (sequence[2], here) and sorted(reads[4:]) == sorted([(sequence[3], ahead),
                                                                            (sequence[4], ahead)])
    fetch(1)  # read ahead before; and so are the two after it
    assert len(reads) == 6
    assert pickle.loads(pickle.dumps(table))._ahead == {}  # a plan is the process's own


def test_the_order_shuffles_row_groups_then_rows_within_a_window(files):
    table = ParquetTable(files, shuffle_window=2)
    assert len(table.row_group_sizes) == FILES * 4 and table.row_group_sizes.tolist()[:4] == [6, 6, 6, 2]
    starts = np.concatenate([[0], np.cumsum(table.row_group_sizes)])
    group_of = np.searchsorted(starts, np.arange(len(table)), side="right") - 1
    orders = [table.epoch_order(seed=3, epoch=e) for e in (0, 1)]
    for order in orders:
        assert sorted(order.tolist()) == list(range(len(table)))
        groups = group_of[order]
        # each window's rows form one stretch of the order: at most 2 row groups between two changes of window
        windows, position = [], 0
        while position < len(order):
            pair = set()
            end = position
            while end < len(order) and len(pair | {groups[end]}) <= 2:
                pair.add(groups[end])
                end += 1
            windows.append(pair)
            position = end
        assert len(windows) <= len(table.row_group_sizes) // 2 + 1
        assert np.any(np.diff(order) != 1)  # shuffled within the windows
    assert not np.array_equal(orders[0], orders[1])
    assert np.array_equal(table.epoch_order(3, 0), orders[0])  # the same on every rank and run
    plan = ShardPlan(len(table), 4, shard_id=1, num_shards=2, seed=3, order_of=table.epoch_order)
    assert np.array_equal(plan.order(0), orders[0])


def test_the_files_are_opened_several_at_a_time_and_the_first_error_in_order_is_raised(files, tmp_path, monkeypatch):
    """Footers and label columns are read for several files at once (over S3 each waits on a request's latency);
    where two files fail, the error is the first file's."""
    import threading
    import time

    from dali_multicrop.sources import parquet

    open_file, lock, state = parquet._open, threading.Lock(), {"now": 0, "most": 0}

    def slow(pq, file):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        return open_file(pq, file)

    monkeypatch.setattr(parquet, "_open", slow)
    assert len(ParquetTable(files)) == FILES * ROWS
    assert state["most"] == FILES
    for f in range(FILES):  # files 1 and 2 lack the label column
        labels = [0] * ROWS if f == 0 else None
        columns = {"image": [jpeg(0)] * ROWS, **({"label": labels} if labels else {"other": [0] * ROWS})}
        pq.write_table(pa.table(columns), tmp_path / f"part-{f}.parquet")
    with pytest.raises(ValueError, match=r"part-1\.parquet' has no column 'label'"):
        ParquetTable(str(tmp_path / "part-*.parquet"))


def test_rows_stored_grouped_by_label_are_warned_of_with_the_fix(tmp_path):
    """Files written class by class: a shuffle window of a few row groups holds few classes, so every batch would;
    the table says so, with what to do. Rows in random order, a window holding every row group, or no labels: no
    warning."""
    import warnings

    from dali_multicrop.sources import GroupedRowsWarning

    n = 240
    images = [{"bytes": b"\xff\xd8" + os.urandom(500), "path": None} for _ in range(n)]  # not decoded here

    def table_of(labels, name):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"image": images, "label": labels}), path, row_group_size=12)
        return str(path)

    grouped = table_of([f"class-{i // 12:02d}" for i in range(n)], "grouped")  # 20 classes, one per row group
    with pytest.warns(GroupedRowsWarning, match=r"grouped by label: a shuffle window of 2 row groups \(about 24 rows\) "
                                                r"holds 2\.0 classes on average, where as many rows in random order "
                                                r"would hold 14\.2.*dataset\.shuffle\(seed=0\)"):
        table = ParquetTable(grouped, shuffle_window=2)
    assert table.mixing() == (2.0, pytest.approx(20 * (1 - 0.95 ** 24)))
    with pytest.warns(GroupedRowsWarning):  # integer labels as large as ids: counted, never a table that size
        assert ParquetTable(table_of([10**12 + i // 12 for i in range(n)], "ids"), shuffle_window=2).mixing()[0] == 2
    assert table.cache_bytes == int(6 * table.row_group_bytes.mean()) > 6 * 12 * 502
    with warnings.catch_warnings():
        warnings.simplefilter("error", GroupedRowsWarning)
        mixed = ParquetTable(table_of([f"class-{i // 12:02d}" for i in np.random.default_rng(0).permutation(n)],
                                      "mixed"), shuffle_window=2)
        held, expected = mixed.mixing()
        assert held > 0.8 * expected
        ParquetTable(grouped, shuffle_window=20)  # a window holds the whole table
        ParquetTable(grouped, label=None)


def test_len_and_labels_come_without_reading_an_image_byte(files, monkeypatch):
    def no_reads(self, group):
        raise AssertionError("an image row group was read")

    monkeypatch.setattr(ParquetTable, "_block", no_reads)
    loader = DaliMultiCropLoader(f"parquet:{files}", crops=CROPS, batch_size=8, device="cpu")
    assert len(loader.source) == FILES * ROWS and len(loader) == -(-FILES * ROWS // 8)
    loader.close()


def test_integer_labels_a_binary_column_and_a_table_passed_directly(tmp_path):
    n = FILES * ROWS
    pattern = write(tmp_path, labels=[(7 * i) % 11 for i in range(n)], struct=False)
    table = ParquetTable(pattern, shuffle_window=1, cache_row_groups=1)
    assert table.classes == () and table.labels.tolist() == [(7 * i) % 11 for i in range(n)]
    image, label = table[25]
    assert bytes(image) == jpeg(25) and label == (7 * 25) % 11
    loader = DaliMultiCropLoader(table, crops=CROPS, batch_size=7, device="cpu", seed=1)
    assert sorted(indices_of(loader)) == list(range(n))
    loader.close()
    again = pickle.loads(pickle.dumps(table))
    assert bytes(again[59][0]) == jpeg(59)


def test_a_missing_column_is_named_with_the_columns_that_exist(files):
    with pytest.raises(ValueError, match=r"has no column 'img' \(its columns: image, label\)"):
        ParquetTable(files, image="img")
    with pytest.raises(ValueError, match=r"has no column 'class'"):
        DaliMultiCropLoader(ParquetTable(files, label="class"), crops=CROPS, batch_size=4, device="cpu")
    with pytest.raises(ValueError, match="no Parquet file matches"):
        ParquetTable(files.replace("train", "valid"))


def test_resume_mid_epoch_repeats_the_rest_exactly(files):
    def make():
        return DaliMultiCropLoader(f"parquet:{files}", crops=CROPS, batch_size=6, device="cpu", seed=9)

    first = make()
    first.set_epoch(1)
    rest, state = [], None
    for k, batch in enumerate(first):
        if k == 3:
            state = json.loads(json.dumps(first.state_dict()))
        elif k > 3:
            rest.append((batch.indices.clone(), batch.crops[0].clone()))
    first.close()
    resumed = make()
    resumed.load_state_dict(state)
    resumed.set_epoch(1)
    again = [(b.indices.clone(), b.crops[0].clone()) for b in resumed]
    assert len(again) == len(rest) > 0
    for (i, c), (j, d) in zip(rest, again):
        assert torch.equal(i, j) and torch.equal(c, d)
    resumed.close()


def test_bad_rows_are_named_by_file_and_row_and_skipped(tmp_path):
    n = FILES * ROWS
    images = [jpeg(i) for i in range(n)]
    images[7] = None  # a null image
    images[30] = b"<!DOCTYPE html><html>404</html>"  # not an image
    pattern = write(tmp_path, images=images)
    with pytest.warns(UserWarning):
        loader = DaliMultiCropLoader(f"parquet:{pattern}", crops=CROPS, batch_size=6, device="cpu",
                                     on_error="skip", seed=2)
        seen = indices_of(loader)
    assert sorted(i for i in seen if i >= 0) == [i for i in range(n) if i not in (7, 30)]
    names = sorted(loader.skipped)
    assert names == [f"{tmp_path}/train-00000.parquet (row 7)", f"{tmp_path}/train-00001.parquet (row 10)"]
    assert "empty (null)" in loader.skipped[names[0]] and "HTML" in loader.skipped[names[1]]
    loader.close()
    with pytest.raises((ValueError, ImageDecodeError), match=r"train-00000\.parquet \(row 7\)"):
        list(DaliMultiCropLoader(f"parquet:{pattern}", crops=CROPS, batch_size=6, device="cpu", seed=2))
    table = ParquetTable(pattern, shuffle_window=1, cache_row_groups=2)  # the batched fetch, as the items one by one
    wanted = [59, 3, 3, 31, 0, 44, 30, 12]
    assert [(bytes(b), y) for b, y in table.__getitems__(wanted)] == [(bytes(table[i][0]), table[i][1]) for i in wanted]
    assert table.__getitems__([]) == []
    with pytest.raises(ValueError, match=r"train-00000\.parquet \(row 7\)\: the image column 'image' is empty"):
        table.__getitems__([1, 7, 2])
    with pytest.raises(IndexError, match="row 60 is out of range for 60 rows"):
        table.__getitems__([1, 60])


def test_the_loaders_fetch_checks_rows_as_the_dataset_source_checks_items(tmp_path):
    """encoded_items (the loader's fetch from a table): whole JPEGs told apart for a block at once, every other row
    checked as DatasetSource checks an item; each bad row its own named error, the good rows the same bytes."""
    from dali_multicrop.badsamples.diagnose import diagnose_data

    n = FILES * ROWS
    images = [jpeg(i) for i in range(n)]
    png = io.BytesIO()
    Image.fromarray(coordinate_image(8, 8)).save(png, "PNG")
    images[3] = png.getvalue()  # fine, not a JPEG
    images[4] = jpeg(4) + b"\x00" * 10  # fine: bytes after the end marker
    images[7] = None
    images[8] = jpeg(8)[:-300]  # cut short
    images[30] = b"<!DOCTYPE html><html>404</html>"
    table = ParquetTable(write(tmp_path, images=images), shuffle_window=1, cache_row_groups=2)
    wanted = [30, 0, 3, 4, 7, 8, 59, 0]
    got = table.encoded_items(wanted)
    for i, item in zip(wanted, got):
        if i in (7, 8, 30):
            assert isinstance(item, Exception) and f"train-0000{i // ROWS}.parquet (row {i % ROWS})" in str(item)
            assert i == 7 or diagnose_data(np.frombuffer(images[i], np.uint8), "x", decode=False) is not None
        else:
            assert bytes(item[0]) == images[i] and item[0].dtype == np.uint8 and item[1] == table.labels[i]
    assert "empty (null)" in str(got[4]) and "truncated JPEG" in str(got[5]) and "HTML" in str(got[0])


def test_without_pyarrow_the_error_names_the_extra(tmp_path):
    (tmp_path / "pyarrow").mkdir()
    (tmp_path / "pyarrow" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pyarrow'\", name='pyarrow')\n")
    code = ("from dali_multicrop import DaliMultiCropLoader\n"
            "try:\n    DaliMultiCropLoader('parquet:x-*.parquet', crops='2x32', batch_size=2, device='cpu')\n"
            "except ModuleNotFoundError as e:\n    print(e)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert "pip install 'dali-multicrop[parquet]'" in done.stdout, done.stdout + done.stderr
