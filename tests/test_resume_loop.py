"""Resume through the loop the README teaches (issue #30, item 1): ``set_epoch`` at the top of every epoch, a
checkpoint of ``loader.state_dict()`` and ``gen.state_dict()`` after a step, a fresh process that loads them and
runs the same loop again. Every batch (indices, crops, boxes, flips) and every mask after the checkpoint equals the
uninterrupted run's: the resumed run neither replays the interrupted epoch nor skips anything. Real processes, the
script as a user writes it (no main guard)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import hashlib, json, os, sys
    import torch
    from dali_multicrop import DaliMultiCropLoader, MultiCropMaskGenerator
    from dali_multicrop.sample_data import ensure_tiny_data

    data, ckpt_path, log_path, stop = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    loader = DaliMultiCropLoader(data, crops="2x32,4x16", batch_size=8, device="cpu", seed=5, num_threads=2)
    gen = MultiCropMaskGenerator(crops="2x32,4x16", patch_size=8, num_levels=2, num_targets=2, seed=5)
    start = 0
    if os.path.exists(ckpt_path):                      # a fresh process resuming: the README's two lines
        ckpt = torch.load(ckpt_path)
        loader.load_state_dict(ckpt["loader"]); gen.load_state_dict(ckpt["masks"])
        start = ckpt["loader"]["epoch"]

    def digest(*tensors):
        h = hashlib.sha256()
        for t in tensors:
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    log = []
    for epoch in range(start, 3):
        loader.set_epoch(epoch); gen.set_epoch(epoch)   # the README's loop
        for step, batch in enumerate(loader):
            masks = gen(batch)
            log.append([epoch, batch.indices.tolist(), digest(*batch.crops, batch.boxes, batch.flipped),
                        digest(*masks.context, *masks.targets)])
            if stop != "none" and [epoch, step] == json.loads(stop):   # a checkpoint after this step, then a crash
                torch.save({"loader": loader.state_dict(), "masks": gen.state_dict()}, ckpt_path)
                json.dump(log, open(log_path, "w"))
                sys.exit(0)
    json.dump(log, open(log_path, "w"))
""")


def run(tmp_path, name: str, stop: str, ckpt) -> list:
    from dali_multicrop.sample_data import ensure_tiny_data

    log = tmp_path / f"{name}.json"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(ensure_tiny_data(40)), str(ckpt), str(log), stop],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(log.read_text())


def test_the_readmes_loop_resumes_exactly_in_a_fresh_process(tmp_path):
    full = run(tmp_path, "full", "none", tmp_path / "no-checkpoint")
    assert len(full) == 3 * 5  # 40 samples, batches of 8, three epochs
    ckpt = tmp_path / "ckpt.pt"
    before = run(tmp_path, "before", json.dumps([1, 2]), ckpt)  # a checkpoint after epoch 1's third batch
    after = run(tmp_path, "after", "none", ckpt)
    assert len(before) == 8 and before + after == full
    assert after[0][0] == 1  # it goes on in epoch 1, where it stopped: no epoch replayed


def test_set_epoch_of_another_epoch_than_the_loaded_one_starts_at_its_first_batch():
    from dali_multicrop import DaliMultiCropLoader, MultiCropMaskGenerator
    from dali_multicrop.sample_data import ensure_tiny_data

    loader = DaliMultiCropLoader(ensure_tiny_data(40), crops="2x32,4x16", batch_size=8, device="cpu", seed=5)
    state = {**loader.state_dict(), "epoch": 2, "batch": 3}
    loader.load_state_dict(state)
    loader.set_epoch(2)
    assert loader.state_dict()["batch"] == 3  # the loaded epoch: its position kept
    loader.load_state_dict(state)
    loader.set_epoch(4)
    assert (loader.state_dict()["epoch"], loader.state_dict()["batch"]) == (4, 0)
    loader.set_epoch(2)
    assert loader.state_dict()["batch"] == 0  # the loaded position was used up by the first set_epoch
    loader.set_epoch(1)
    last = None
    for last, _ in enumerate(loader):  # a checkpoint after an epoch's last batch points at the next epoch's first
        pass
    assert last == len(loader) - 1 and loader.state_dict()["epoch"] == 2 and loader.state_dict()["batch"] == 0
    gen = MultiCropMaskGenerator(crops="2x32,4x16", patch_size=8, num_levels=2, num_targets=2, seed=5)
    gen.load_state_dict({"epoch": 2, "step": 3, "seed": 5})
    gen.set_epoch(2)
    assert gen.state_dict() == {"epoch": 2, "step": 3, "seed": 5}
    gen.set_epoch(2)
    assert gen.state_dict()["step"] == 0  # a second set_epoch of the epoch is a new start
    gen.load_state_dict({"epoch": 2, "step": 3, "seed": 5})
    gen(batch_size=2, device="cpu")  # a call uses the loaded position up
    gen.set_epoch(2)
    assert gen.state_dict()["step"] == 0
