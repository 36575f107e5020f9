from __future__ import annotations

import pytest

from nix_docker_bench.run import paired_figures


def pair(standin: float, cold: float, noop: float) -> dict:
    return {"standin": {"seconds": standin, "bytes": 100}, "cold_s": cold, "cold_noop_s": noop, "cold_layers_built": 2}


def test_ratios_are_medians_of_each_pairs_ratio_not_ratios_of_medians() -> None:
    # The machine's speed drifted between pairs. Each pair's own ratio is 1.33x, 4x and 1.2x, so
    # the median says 1.33x; the medians of the columns (stand-in 4 s, cold 1.5 s) would say 2.67x.
    figures = paired_figures([pair(2.0, 1.5, 0.5), pair(4.0, 1.0, 0.5), pair(6.0, 5.0, 1.0)])
    assert figures["ratio_wall"] == pytest.approx(2.0 / 1.5)
    assert figures["ratio_work"] == pytest.approx(2.0 / 1.0)
    assert figures["standin"]["seconds"] == 4.0 and figures["cold_s"] == 1.5 and figures["cold_noop_s"] == 0.5
    assert figures["cold_work_s"] == 1.0


def test_one_pair_is_its_own_median() -> None:
    figures = paired_figures([pair(3.0, 2.0, 0.5)])
    assert figures["ratio_wall"] == 1.5 and figures["ratio_work"] == pytest.approx(2.0)
