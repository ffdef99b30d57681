"""Bad and awkward images: every format DALI reads decodes to what PIL shows (EXIF orientation included); every
bad file is an error naming it and saying what is wrong; on_error="skip" keeps epochs whole."""

from __future__ import annotations

import re
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from bad_images import BAD, GOOD, reference_rgb, remove_late, write_corpus
from conftest import coordinate_image, write_folder
from dali_multicrop import DaliMultiCropLoader, FileList, ImageDecodeError, ImageReadError
from dali_multicrop.badsamples.diagnose import decoder_pipeline, diagnose
from dali_multicrop.badsamples.policy import BadImageWarning

CROPS = "1x32,2x16"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("name", sorted(GOOD))
def test_supported_files_decode_to_what_pil_shows(corpus, name):
    """The graph's decoder (DALI's, CPU) against PIL: the same RGB pixels, EXIF-rotated files turned as PIL's
    exif_transpose shows them, 16-bit PNG scaled to 8 bits."""
    pipe = decoder_pipeline()
    pipe.feed_input("encoded", [np.fromfile(corpus[name], dtype=np.uint8)])
    decoded = np.array(pipe.run()[0][0])
    want = reference_rgb(corpus[name])
    assert decoded.shape == want.shape
    assert np.abs(decoded.astype(int) - want.astype(int)).max() <= 2
    assert diagnose(str(corpus[name])) is None
    if name.startswith("exif"):
        assert decoded.shape == (64, 48, 3)  # stored 64 wide: shown turned


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_are_named_with_what_is_wrong(corpus, tmp_path, name):
    path = tmp_path / name
    shutil.copy(corpus[name], path)
    remove_late({name: path})
    problem = diagnose(str(path))
    _, kind, words = BAD[name]
    assert problem is not None and str(path) in str(problem)
    assert re.search(words, str(problem)), str(problem)
    if kind == "unreadable":
        assert isinstance(problem, ImageReadError)
    else:
        assert isinstance(problem, ImageDecodeError) and problem.kind == kind


def test_crops_follow_the_displayed_orientation(corpus, tmp_path):
    """The evaluation view of an EXIF-rotated JPEG equals that of the same picture stored upright."""
    upright = tmp_path / "upright"
    upright.mkdir()
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    for k in (6, 8):
        shutil.copy(corpus[f"exif{k}.jpg"], rotated / f"{k}.jpg")
        Image.fromarray(reference_rgb(corpus[f"exif{k}.jpg"])).save(upright / f"{k}.png")
    views = [next(iter(DaliMultiCropLoader.for_evaluation(str(folder), size=32, resize=36, batch_size=2,
                                                          device="cpu"))).crops[0] for folder in (rotated, upright)]
    assert torch.allclose(views[0], views[1], atol=1e-5)


def test_tiny_and_very_large_images_give_crops(corpus, tmp_path):
    gradient = np.linspace(0, 255, 8000, dtype=np.uint8)[None, :, None].repeat(6000, 0).repeat(3, 2)
    Image.fromarray(gradient).save(tmp_path / "large.jpg", quality=80)
    shutil.copy(corpus["tiny_8x8.png"], tmp_path / "tiny.png")
    batch = next(iter(DaliMultiCropLoader(str(tmp_path), crops="1x64,2x32", batch_size=2, device="cpu")))
    assert [tuple(c.shape) for c in batch.crops] == [(2, 3, 64, 64), (2, 3, 32, 32), (2, 3, 32, 32)]
    assert torch.isfinite(batch.crops[0]).all() and (batch.boxes[..., 2:] > batch.boxes[..., :2]).all()


def _folder_with(tmp_path, bad: dict[str, bytes], good: int = 10):
    """``good`` coordinate JPEGs and the ``bad`` files, in one class, names sorting in order."""
    root = write_folder(tmp_path / "data", {"c": [coordinate_image(40, 52)] * good}, fmt="jpg")
    for name, data in bad.items():
        (root / "c" / name).write_bytes(data)
    return root


def test_raise_names_the_file_every_epoch_and_a_fixed_file_heals(tmp_path, corpus):
    root = _folder_with(tmp_path, {"004b.jpg": corpus["truncated.jpg"].read_bytes()})
    loader = DaliMultiCropLoader(str(root), crops=CROPS, batch_size=2, device="cpu", shuffle=False)
    for _ in range(2):  # the same named error each epoch, not a pipeline left broken
        with pytest.raises(ImageDecodeError, match=r"004b.jpg': is a truncated JPEG"):
            list(loader)
    (root / "c" / "004b.jpg").write_bytes(corpus["baseline.jpg"].read_bytes())
    assert sorted(i for b in loader for i in b.indices.tolist()) == list(range(11))


def test_a_loop_left_early_with_a_bad_image_in_flight(tmp_path, corpus):
    """Batches DALI computed ahead of a loop left early are finished at the next loop: a bad file among them
    is the named error (not DALI's own), and the loop after that runs."""
    root = _folder_with(tmp_path, {"002b.jpg": corpus["page.jpg"].read_bytes()})
    loader = DaliMultiCropLoader(str(root), crops=CROPS, batch_size=2, device="cpu", shuffle=False, prefetch=2)
    for _ in loader:  # batch 0 only; batch 1 (which holds the bad file) was in flight
        break
    with pytest.raises(ImageDecodeError, match=r"002b.jpg': is not an image: it holds HTML"):
        next(iter(loader))
    (root / "c" / "002b.jpg").write_bytes(corpus["baseline.jpg"].read_bytes())
    assert sorted(i for b in loader for i in b.indices.tolist()) == list(range(11))


def test_skip_keeps_epochs_whole_and_counts_what_it_skipped(tmp_path, corpus):
    bad = {"001b.jpg": corpus["truncated.jpg"].read_bytes(), "005b.jpg": corpus["noise.jpg"].read_bytes(),
           "008b.jpg": b""}
    root = _folder_with(tmp_path, bad)
    files = FileList.from_folder(root).files
    bad_index = {files.index(str(root / "c" / name)) for name in bad}
    loader = DaliMultiCropLoader(str(root), crops=CROPS, batch_size=3, device="cpu", on_error="skip", seed=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BadImageWarning)
        for _ in range(2):
            batches = list(loader)
            assert [len(b.indices) for b in batches] == [3, 3, 3, 3, 1]  # 13 samples: every batch full-size
            seen = [i for b in batches for i in b.indices.tolist()]
            assert sorted(i for i in seen if i >= 0) == sorted(set(range(13)) - bad_index)  # good: once each
            assert seen.count(-1) == 3
            assert all(torch.isfinite(c).all() for b in batches for c in b.crops)
    said = [str(w.message) for w in caught if issubclass(w.category, BadImageWarning)]
    assert len(said) == 3, said  # once per file, not once per epoch
    assert set(loader.skipped) == {str(root / "c" / name) for name in bad}
    assert "truncated JPEG" in loader.skipped[str(root / "c" / "001b.jpg")]
    assert "empty (0 bytes)" in loader.skipped[str(root / "c" / "008b.jpg")]


def test_unsupported_format_in_a_file_list_is_named(corpus):
    pairs = [(str(corpus["baseline.jpg"]), 0), (str(corpus["animated.gif"]), 1)]
    with pytest.raises(ImageDecodeError, match=r"animated.gif': is a GIF file, a format DALI's decoder does not read"):
        list(DaliMultiCropLoader(pairs, crops=CROPS, batch_size=2, device="cpu"))
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip', got 'ignore'"):
        DaliMultiCropLoader(pairs, crops=CROPS, device="cpu", on_error="ignore")


def test_check_data_reports_every_bad_and_awkward_file(corpus, tmp_path):
    from typer.testing import CliRunner

    from dali_multicrop.cli import app

    data = tmp_path / "data" / "c"
    data.mkdir(parents=True)
    for name, path in corpus.items():
        shutil.copy(path, data / name)
    report = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["check-data", str(tmp_path / "data"), "--min-size", "32", "--report",
                                      str(report)])
    assert result.exit_code == 1, result.output
    found = __import__("json").loads(report.read_text())["found"]
    names = {k: sorted(__import__("os").path.basename(p) for p in v) for k, v in found.items()}
    assert names["unreadable"] == ["empty.jpg"]
    # removed.jpg is there (it is removed only after listing in the loader tests); GIFs are not listed as images
    assert names["undecodable"] == ["corrupt.jpg", "noise.jpg", "page.jpg", "truncated.jpg", "truncated.png"]
    assert names["tiny"] == ["tiny_8x8.png"] and names["cmyk"] == ["cmyk.jpg"]
    assert names["grayscale"] == ["grayscale.jpg", "sixteen_bit.png"]
    assert "training would stop" in result.output and "FAIL undecodable  5" in result.output
    good = tmp_path / "good" / "c"
    good.mkdir(parents=True)
    shutil.copy(corpus["baseline.jpg"], good / "a.jpg")
    assert CliRunner().invoke(app, ["check-data", str(tmp_path / "good"), "--min-size", "8"]).exit_code == 0


def test_check_files_names_a_file_removed_after_listing_and_a_bad_one_mid_batch(corpus, tmp_path):
    from dali_multicrop.badsamples.scan import check_files

    paths = []
    for k in range(150):  # the bad file among many good ones, two worker processes
        paths.append(str(tmp_path / f"{k:03d}.jpg"))
        shutil.copy(corpus["baseline.jpg"], paths[-1])
    # passes the first pass (markers fine), fails to decode; decoded in a batch of 64 on 2 threads, DALI 2.4
    # crashes the process on it now and then, which is why check-data decodes one file at a time in workers
    shutil.copy(corpus["corrupt.jpg"], paths[100])
    (tmp_path / "gone.jpg").write_bytes(b"")
    __import__("os").remove(tmp_path / "gone.jpg")
    report = check_files(paths + [str(tmp_path / "gone.jpg")], min_size=8, threads=2)
    assert list(report.found["undecodable"]) == [paths[100]]
    assert "is a JPEG file DALI cannot decode" in report.found["undecodable"][paths[100]]
    assert "does not exist" in report.found["unreadable"][str(tmp_path / "gone.jpg")]
    assert report.fails_training and report.files == 151


def test_validate_proves_files_before_dali_batches_them(tmp_path, corpus):
    """A corrupt JPEG (markers fine, data garbage) in a batch of 64 on 2 threads can crash DALI 2.4's decoder,
    process and all. validate=True decodes each file first, alone, in a worker process: the file takes the
    on_error path and never reaches the batch decoder; later epochs do not decode again."""
    root = tmp_path / "data" / "c"
    root.mkdir(parents=True)
    for k in range(150):
        shutil.copy(corpus["baseline.jpg"], root / f"{k:03d}.jpg")
    shutil.copy(corpus["corrupt.jpg"], root / "100.jpg")
    common = dict(crops=CROPS, batch_size=64, device="cpu", num_threads=2, validate=True)
    loader = DaliMultiCropLoader(str(root.parent), on_error="skip", **common)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadImageWarning)
        for _ in range(3):
            batches = list(loader)
            assert [len(b.indices) for b in batches] == [64, 64, 22]
            seen = [i for b in batches for i in b.indices.tolist()]
            assert seen.count(-1) == 1 and sorted(i for i in seen if i >= 0) == [i for i in range(150) if i != 100]
    assert list(loader.skipped) == [str(root / "100.jpg")]
    assert "DALI cannot decode (corrupt?)" in loader.skipped[str(root / "100.jpg")]
    assert loader._bad.validator.checked == 150  # each file decoded once over three epochs
    loader.close()
    strict = DaliMultiCropLoader(str(root.parent), shuffle=False, **common)
    with pytest.raises(ImageDecodeError, match=r"100.jpg': is a JPEG file DALI cannot decode \(corrupt\?\)"):
        list(strict)
    strict.close()


def test_a_bad_file_in_a_users_script_leads_with_the_named_error(tmp_path, corpus):
    """What a user sees when a run stops on a bad file: the error that names it, not DALI's long traceback first
    (DALI's message stays on the error, as a one-line note and as ``.dali_error``). A real process."""
    import subprocess
    import sys

    root = _folder_with(tmp_path, {"004b.jpg": corpus["truncated.jpg"].read_bytes()})
    script = (f"from dali_multicrop import DaliMultiCropLoader\n"
              f"loader = DaliMultiCropLoader({str(root)!r}, crops={CROPS!r}, batch_size=2, device='cpu', "
              f"shuffle=False, validate=False)\n"
              f"for batch in loader:\n    pass\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "direct cause of the following exception" not in proc.stderr
    tail = proc.stderr.strip().splitlines()
    named = next(k for k, line in enumerate(tail) if line.startswith("dali_multicrop.") and "ImageDecodeError" in line)
    assert "004b.jpg': is a truncated JPEG" in tail[named] and tail[named + 1].startswith("(DALI's own error")
    assert len(tail) < 20, proc.stderr  # a short traceback: the user's line, the loader's, the error


def _damaged_jpeg() -> bytes:
    """A JPEG whose middle bytes were overwritten: it decodes (to partly noise), with libjpeg's corrupt-data
    warning on stderr."""
    from dali_multicrop.sample_data import sample_image

    data = bytearray(sample_image(3))
    third = len(data) // 3
    data[third:third + 2000] = np.random.default_rng(0).integers(0, 255, 2000, dtype=np.uint8).tobytes()
    return bytes(data)


def test_a_damaged_jpeg_that_still_decodes_is_named_by_check_data_and_the_validator(tmp_path, corpus):
    from typer.testing import CliRunner

    from dali_multicrop.badsamples.validation import SuspiciousImageWarning
    from dali_multicrop.cli import app

    root = _folder_with(tmp_path, {"004b.jpg": _damaged_jpeg()})
    report = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["check-data", str(root), "--min-size", "8", "--report", str(report)])
    assert result.exit_code == 0, result.output  # it does not stop training: listed for a look
    suspicious = __import__("json").loads(report.read_text())["found"]["suspicious"]
    assert list(suspicious) == [str(root / "c" / "004b.jpg")]
    assert suspicious[str(root / "c" / "004b.jpg")].startswith("Corrupt JPEG data: ")
    assert "suspicious   1" in result.output
    loader = DaliMultiCropLoader(str(root), crops=CROPS, batch_size=2, device="cpu", validate=True)
    with pytest.warns(SuspiciousImageWarning, match=r"004b.jpg' decodes only with the decoder's warning: Corrupt"):
        assert sorted(i for b in loader for i in b.indices.tolist()) == list(range(11))  # trained on
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named once: no warning in the next epoch
        assert len(list(loader)) == len(loader)
