"""DALI's executor settings (dali_multicrop.graph.executor): parsed with errors that name the bad part, given to the
pipeline and to every resize, and scheduling only: the same crops as DALI's defaults."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dali_multicrop.graph.executor import ExecutorSettings, executor_settings


def test_the_text_form_parses_and_prints_back():
    s = ExecutorSettings.parse(" concurrency=full, stream_policy=per_operator,resize_batch=batch ")
    assert s == ExecutorSettings("full", "per_operator", "batch")
    assert str(s) == "concurrency=full,stream_policy=per_operator,resize_batch=batch"
    assert ExecutorSettings.parse(str(s)) == s and ExecutorSettings.parse("resize_batch=64").resize_batch == 64
    assert str(ExecutorSettings()) == "DALI's defaults" and executor_settings(None) == ExecutorSettings.parse("")
    assert s.resize_args(256) == {"minibatch_size": 256} and ExecutorSettings().resize_args(256) == {}
    assert ExecutorSettings(resize_batch=16).resize_args(256) == {"minibatch_size": 16}


@pytest.mark.parametrize("text, words", [
    ("concurrency=most", "executor concurrency must be one of none, backend, full, got 'most'"),
    ("stream=single", "executor setting 'stream' is not one of concurrency, stream_policy, resize_batch"),
    ("concurrency", "executor setting 'concurrency' has no value"),
    ("resize_batch=0", "executor resize_batch must be an integer >= 1 or 'batch', got 0"),
    ("resize_batch=all", "executor resize_batch must be an integer >= 1 or 'batch', got 'all'"),
    ("concurrency=full,concurrency=none", "executor setting 'concurrency' is given twice"),
])
def test_bad_settings_are_named(text, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        ExecutorSettings.parse(text)


def test_the_settings_reach_the_pipeline_and_change_no_crop():
    """The CPU graph over the same draws, with and without settings:
    the pipeline's flags are set, every resize of the GPU graph takes the whole batch in one launch, and the crops are
    identical."""
    from dali_multicrop import FileList
    from dali_multicrop.sources.epochs import EpochPlan, ShardPlan
    from dali_multicrop.graph.feed import EpochFeed
    from dali_multicrop.graph.builder import GraphSettings, build_pipeline
    from dali_multicrop.recipes.presets import parse_crops
    from dali_multicrop.sample_data import ensure_sample_data

    files = FileList.from_folder(ensure_sample_data(16))
    spec = parse_crops("2x64,2x32")
    outputs = []
    for executor in (ExecutorSettings(), ExecutorSettings("full", "single", "batch")):
        feed = EpochFeed(files, spec, seed=1)
        feed.start(EpochPlan.of(ShardPlan(len(files), 8, seed=1).batches(0)[:1]))
        pipe = build_pipeline(feed, spec, GraphSettings(device="cpu", batch_size=8, num_threads=2, seed=0,
                                                        executor=executor)).pipeline
        pipe.build()
        if executor.concurrency is not None:
            assert pipe.concurrency.name == "FULL" and pipe.stream_policy.name == "SINGLE"
            # the resize launches are the GPU graph's (the CPU graph resizes in its crop operator): defined, not built
            gpu = build_pipeline(EpochFeed(files, spec, seed=1), spec,
                                 GraphSettings(device="gpu", batch_size=8, num_threads=2, seed=0,
                                               executor=executor)).pipeline
            gpu._build_graph()
            resizes = [op for op in gpu._ops if getattr(op._op, "schema_name", "") == "Resize"]
            assert len(resizes) == spec.num_crops
            assert all(op._op._init_args["minibatch_size"] == 8 for op in resizes)
        outputs.append([np.stack([np.asarray(o.at(k)) for k in range(8)]) for o in pipe.run()[:spec.num_crops]])
        del pipe
    for default, scheduled in zip(*outputs):
        np.testing.assert_array_equal(default, scheduled)


def test_bench_says_which_executor_setting_is_wrong(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dali_multicrop", "bench", "--executor", "concurrency=most",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "--executor: executor concurrency must be one of none, backend, full, got 'most'" in proc.stderr
    assert "Traceback" not in proc.stderr
