"""Encoder batch size and device choice for GPU pods, checked without a GPU."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagelens.embed import (
    CPU_IMAGE_BATCH,
    CPU_TEXT_BATCH,
    IMAGE_ITEM_BYTES,
    MAX_IMAGE_BATCH,
    MAX_TEXT_BATCH,
    TEXT_ITEM_BYTES,
    batch_size_for_memory,
    choose_batch_size,
    resolve_device,
)
from pagelens.settings import Settings

GIB = 2**30


@pytest.mark.parametrize(("free_gib", "expected"), [
    (70.0, MAX_TEXT_BATCH),  # an H100 after loading MiniLM: capped
    (10.0, 512),  # 7.5 GiB usable / 8 MiB per chunk = 960 -> 512
    (2.0, 128),  # 1.5 GiB / 8 MiB = 192 -> 128
    (0.01, 1),  # almost nothing free still encodes, one at a time
])
def test_text_batch_follows_free_gpu_memory(free_gib: float, expected: int) -> None:
    assert batch_size_for_memory(int(free_gib * GIB), TEXT_ITEM_BYTES, MAX_TEXT_BATCH) == expected


def test_image_batches_are_capped_lower_than_text() -> None:
    assert batch_size_for_memory(70 * GIB, IMAGE_ITEM_BYTES, MAX_IMAGE_BATCH) == MAX_IMAGE_BATCH == 256


@given(st.integers(min_value=0, max_value=200 * GIB), st.integers(min_value=0, max_value=200 * GIB))
def test_batch_is_a_power_of_two_that_fits_and_never_shrinks_with_more_memory(a: int, b: int) -> None:
    small, large = sorted((a, b))
    size = batch_size_for_memory(small, TEXT_ITEM_BYTES, MAX_TEXT_BATCH)
    assert size & (size - 1) == 0 and 1 <= size <= MAX_TEXT_BATCH
    assert size == 1 or size * TEXT_ITEM_BYTES <= small * 0.75
    assert batch_size_for_memory(large, TEXT_ITEM_BYTES, MAX_TEXT_BATCH) >= size


def test_a_configured_batch_size_wins_and_auto_on_cpu_keeps_the_cpu_sizes() -> None:
    # A set size is used as is, on any device (no GPU is queried for it).
    assert choose_batch_size(24, "cuda:0", TEXT_ITEM_BYTES, MAX_TEXT_BATCH, CPU_TEXT_BATCH) == 24
    assert choose_batch_size(0, "cpu", TEXT_ITEM_BYTES, MAX_TEXT_BATCH, CPU_TEXT_BATCH) == 32
    assert choose_batch_size(0, "cpu", IMAGE_ITEM_BYTES, MAX_IMAGE_BATCH, CPU_IMAGE_BATCH) == 16


def test_auto_device_is_cpu_without_a_gpu() -> None:
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cuda:1") == "cuda:1"


@pytest.mark.integration
def test_the_encoder_image_defaults_run_on_a_cpu_as_before() -> None:
    """PAGELENS_DEVICE=auto and PAGELENS_ENCODE_BATCH_SIZE=0 (the image's env) on a CPU: fp32, batches of 32."""
    from pagelens.embed import text_encoder

    encoder = text_encoder(Settings(device="auto", encode_batch_size=0))
    assert encoder.device == "cpu" and encoder.batch_size == CPU_TEXT_BATCH
    assert str(next(encoder.model.parameters()).dtype) == "torch.float32"
    (vector,) = encoder.encode(["calibration interval of the robot arm"])
    assert len(vector) == 384
