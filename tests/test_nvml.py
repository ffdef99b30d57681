"""The engine sampler (benchmark.nvml) against a stand-in for the driver's NVML library: the JPEG engine is read
from its own counter, not the video decoder's; a GPU without the counter reads None; no driver reads nothing and
says why."""

from __future__ import annotations

import time

from dali_multicrop.benchmark.nvml import EngineSampler, open_nvml


class FakeNvml:
    """NVML's calls as the sampler makes them, writing through the byref arguments; ``jpeg=None``: not supported."""

    def __init__(self, jpeg, video=0, gpu=55):
        self.jpeg, self.video, self.gpu = jpeg, video, gpu
        self.shut = False

    def nvmlInit_v2(self):
        return 0

    def nvmlDeviceGetHandleByIndex_v2(self, index, handle):
        return 0

    def nvmlDeviceGetUtilizationRates(self, handle, rates):
        rates._obj.gpu = self.gpu
        return 0

    def nvmlDeviceGetJpgUtilization(self, handle, value, period):
        if self.jpeg is None:
            return 3  # NVML_ERROR_NOT_SUPPORTED
        value._obj.value = self.jpeg
        return 0

    def nvmlDeviceGetDecoderUtilization(self, handle, value, period):
        value._obj.value = self.video
        return 0

    def nvmlShutdown(self):
        self.shut = True
        return 0


def sample(lib, seconds=0.1):
    with EngineSampler(interval=0.01, loader=lambda name: lib) as sampler:
        time.sleep(seconds)
    return sampler.reading


def test_the_jpeg_engine_is_read_from_its_own_counter():
    lib = FakeNvml(jpeg=72, video=0)
    reading = sample(lib)
    assert reading.samples >= 2 and lib.shut
    assert reading.peak == {"gpu": 55, "jpeg": 72, "video_decoder": 0} and reading.mean["jpeg"] == 72
    line = reading.summary()
    assert "jpeg max 72% mean 72%" in line and "idle" not in line  # the video decoder's 0 raises no alarm


def test_an_idle_jpeg_engine_is_said_and_a_missing_counter_is_not_taken_for_idle():
    assert "JPEG engine stayed idle" in sample(FakeNvml(jpeg=0)).summary()
    reading = sample(FakeNvml(jpeg=None))
    assert reading.peak["jpeg"] is None and reading.peak["gpu"] == 55
    assert "jpeg n/a" in reading.summary() and "idle" not in reading.summary()
    assert "no JPEG engine counter" in reading.note


def test_without_a_driver_nothing_is_read_and_the_reason_is_given():
    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    nvml, why = open_nvml(loader=missing)
    assert nvml is None and "libnvidia-ml.so.1" in why
    with EngineSampler(loader=missing) as sampler:
        pass
    assert sampler.reading.samples == 0 and "no readings (NVML is not available" in sampler.reading.summary()
