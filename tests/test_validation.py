"""validate=True / on_error="skip": each file decoded once, alone, in worker processes before DALI reads it. A worker
that dies for a reason not its file's condemns nothing; a validator that cannot run is one clear error; what it
found survives a new graph (a curriculum changing the crops)."""

from __future__ import annotations

import io
import os
import signal
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from bad_images import BAD, GOOD
from dali_multicrop import Curriculum, DaliMultiCropLoader, Ramp
from dali_multicrop.badsamples.policy import BadImageWarning
from dali_multicrop.badsamples.validation import FileValidator, ValidatorUnavailable

CROPS = "1x32,2x16"


def _large_jpeg() -> bytes:
    """A JPEG slow enough to decode (about 10 ms) that a worker is caught in the middle of its files."""
    pixels = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture(scope="module")
def folder_with_one_corrupt(tmp_path_factory):
    root = tmp_path_factory.mktemp("one_corrupt")
    (root / "a").mkdir()
    good = GOOD["baseline.jpg"]()
    for k in range(40):
        (root / "a" / f"{k:02d}.jpg").write_bytes(good)
    (root / "a" / "17_corrupt.jpg").write_bytes(BAD["corrupt.jpg"][0]())  # sample 18 of 41
    return root


def test_a_worker_killed_from_outside_condemns_none_of_the_files_it_held(tmp_path):
    import time

    (tmp_path / "big.jpg").write_bytes(_large_jpeg())
    files = [str(tmp_path / "big.jpg")] * 400  # 400 samples, each decoded on its own (about 4 s of work)
    validator = FileValidator(files, workers=2)
    everything = np.arange(len(files))
    validator.submit(everything)
    assert validator.wait(everything[:1]) == {}
    deadline = time.monotonic() + 30
    while len(validator.worker_pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    pids = validator.worker_pids()
    assert len(pids) == 2
    for pid in pids:  # as the OOM killer would, while they decode good files
        os.kill(pid, signal.SIGKILL)
    assert validator.wait(everything) == {}  # not one good file condemned
    assert validator.checked == 400
    assert validator.workers_started >= 4  # both killed workers replaced by fresh ones
    validator.close()


def test_a_validator_that_cannot_start_is_one_clear_error(folder_with_one_corrupt, monkeypatch):
    import dali_multicrop.workers.pool as workers  # where the pool looks the command up

    broken = [sys.executable, "-c", "import sys; sys.stderr.write('OSError: libnvimgcodec.so: cannot open\\n'); "
                                    "sys.exit(7)"]
    monkeypatch.setattr(workers, "worker_command", lambda target, prepare=None: broken)
    loader = DaliMultiCropLoader(str(folder_with_one_corrupt), crops=CROPS, batch_size=8, device="cpu",
                                 on_error="skip")
    with pytest.raises(ValidatorUnavailable) as caught:
        list(loader)
    message = str(caught.value)
    assert "cannot check the images before DALI reads them (validate=False turns the check off" in message
    assert "exited with code 7 before it was ready; its last words: OSError: libnvimgcodec.so: cannot open" in message
    assert "unreadable" not in message and loader.skipped == {}  # nothing condemned
    loader.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadImageWarning)
        unchecked = DaliMultiCropLoader(str(folder_with_one_corrupt), crops=CROPS, batch_size=8, device="cpu",
                                        on_error="skip", validate=False)
        seen = [i for b in unchecked for i in b.indices.tolist()]  # found by DALI's failure and the scan instead
    assert sorted(seen) == [-1] + [i for i in range(41) if i != 18]
    unchecked.close()


def test_what_validation_found_survives_a_curriculum_changing_the_crops(folder_with_one_corrupt):
    # epoch 0 has one local crop, epoch 1 two: a new graph, the same bad files
    curriculum = Curriculum(local_crops=Ramp(1, 2, epochs=1))
    loader = DaliMultiCropLoader(str(folder_with_one_corrupt), crops="1x32,2x16", batch_size=8, device="cpu",
                                 on_error="skip", curriculum=curriculum)
    bad = str(folder_with_one_corrupt / "a" / "17_corrupt.jpg")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = list(loader)
        validator = loader._bad.validator
        checked, started = validator.checked, validator.workers_started
        second = list(loader)
    assert [len(b.crops) for b in (first[0], second[0])] == [2, 3]
    for batches in (first, second):
        seen = [i for b in batches for i in b.indices.tolist()]
        assert sorted(seen) == [-1] + [i for i in range(41) if i != 18]
    assert [str(w.message).split("'")[1] for w in caught if issubclass(w.category, BadImageWarning)] == [bad]
    assert list(loader.skipped) == [bad]
    assert loader._bad.validator is validator and (validator.checked, validator.workers_started) == (checked, started)
    assert checked == 41
    loader.close()


def test_validate_and_skip_say_what_each_source_can_do(coord_folder, tmp_path):
    from dali_multicrop import ArraySource
    from dali_multicrop.sources.tar import TarMembers

    arrays = ArraySource(np.zeros((4, 8, 8, 3), np.uint8), [0] * 4)
    with pytest.raises(ValueError, match="arrays are decoded pixels already and cannot be bad"):
        DaliMultiCropLoader(arrays, crops=CROPS, device="cpu", validate=True)
    skip = DaliMultiCropLoader(arrays, crops=CROPS, batch_size=4, device="cpu", on_error="skip")  # nothing to skip
    assert sorted(i for b in skip for i in b.indices.tolist()) == [0, 1, 2, 3] and skip.skipped == {}
    items = [(np.zeros((8, 8, 3), np.uint8), 0)] * 3
    with pytest.raises(ValueError, match="a torch Dataset has none: their encoded items are checked as they are"):
        DaliMultiCropLoader(_List(items), crops=CROPS, device="cpu", validate=True)

    class RemoteShards:
        paths = ("/local/a.tar", "s3://bucket/train-001.tar")

    with pytest.raises(ValueError, match=r"from local files only; 's3://bucket/train-001.tar' is in object storage"):
        TarMembers(RemoteShards())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip', got 'ignore'"):
        DaliMultiCropLoader(str(coord_folder), crops=CROPS, device="cpu", on_error="ignore")


class _List:
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]
