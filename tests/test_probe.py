"""``dali-multicrop probe DATA``: the loader over a user's own folder beside the decode-only ceiling, and how many GPUs
its rate feeds (issue #30, item 3). A real process, as a user runs it."""

from __future__ import annotations

import re
import subprocess
import sys

from dali_multicrop.sample_data import ensure_tiny_data


def probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dali_multicrop", "probe", *args], capture_output=True, text=True,
                          timeout=300)


def test_probe_prints_the_loaders_rate_the_ceiling_and_the_gpus_it_feeds():
    proc = probe(str(ensure_tiny_data(48)), "--crops", "2x32,4x16", "--batch-size", "16", "--batches", "3",
                 "--device", "cpu", "--model-img-s", "25")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("probe: ") and "(48 images), crops 2x32,4x16, the cpu graph, batch 16" in lines[0]
    rates = [float(re.search(r"([\d,.]+) img/s", line).group(1).replace(",", "")) for line in lines[1:3]]
    assert lines[1].split()[0] == "loader" and lines[2].startswith("  decode only") and all(r > 0 for r in rates)
    share = int(re.search(r"makes (\d+)% of the decode ceiling", lines[3]).group(1))
    assert abs(share - 100 * rates[0] / rates[1]) <= 1
    fed = float(re.search(r"feeds ([\d.]+) GPUs", lines[4]).group(1))
    assert abs(fed - rates[0] / 25) < 0.01


def test_probe_names_what_is_wrong():
    missing = probe("/nonexistent/photos")
    assert missing.returncode != 0 and "DATA folder '/nonexistent/photos' does not exist" in missing.stderr
    bad = probe(str(ensure_tiny_data(48)), "--model-img-s", "0")
    assert bad.returncode != 0 and "--model-img-s must be a rate above 0, got 0.0" in bad.stderr
    device = probe(str(ensure_tiny_data(48)), "--device", "tpu")
    assert device.returncode != 0 and "--device must be gpu, cpu or auto, got 'tpu'" in device.stderr
