"""Window planning and fusion weights of the long-cue sampler."""

import pytest
import torch

from filmscore.engine.windowed import fusion_weights, plan_windows


@pytest.mark.parametrize("n", [8, 200, 256, 257, 600, 15000])
def test_windows_cover_and_weights_sum_to_one(n):
    windows = plan_windows(n, 256, 64, 8)
    total = torch.zeros(n)
    for w, wt in zip(windows, fusion_weights(windows, n, 64)):
        assert 0 <= w.start and w.start + w.length <= n
        assert w.length == min(n, 256)
        total[w.start:w.start + w.length] += wt
    assert torch.allclose(total, torch.ones(n), atol=1e-6)


def test_weights_ramp_inside_overlaps():
    windows = plan_windows(1000, 256, 64, 8)
    w = fusion_weights(windows, 1000, 64)
    assert w[0][0] == 1 and w[0][-1] < 0.05  # first window fades out at its end
    assert w[1][0] < 0.05 and w[1][128] == 1


def test_bad_plan_raises():
    with pytest.raises(ValueError):
        plan_windows(1000, 250, 64, 8)
