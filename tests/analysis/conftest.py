"""Fixtures for the NMR analysis tests: synthetic Spinsolve folders with known truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from nmr_test_data import BASIC_ANALYSIS, PRODUCT, TMB, FolderFactory

from robochem.analysis import AnalysisConfig
from robochem.simulator.nmr_files import write_spinsolve_folder
from robochem.simulator.nmr_synth import Signal, noise_for_snr, synthesize_fid


@pytest.fixture
def basic_config() -> AnalysisConfig:
    return AnalysisConfig.model_validate(BASIC_ANALYSIS)


@pytest.fixture
def make_folder(tmp_path: Path) -> FolderFactory:
    """Write a 1H Spinsolve folder; keyword arguments go to ``synthesize_fid``."""
    counter = {"n": 0}

    def factory(
        signals: tuple[Signal, ...] = (TMB, PRODUCT),
        *,
        snr: float | None = 500.0,
        seed: int = 0,
        folder_kwargs: dict[str, Any] | None = None,
        **fid_kwargs: Any,
    ) -> Path:
        counter["n"] += 1
        kwargs: dict[str, Any] = {
            "center_ppm": 5.0,
            "n_points": 16384,
            "bandwidth_hz": 5000.0,
            "b1_freq_mhz": 43.49,
            "linewidth_hz": 1.0,
        }
        kwargs.update(fid_kwargs)
        if snr is not None and "noise_sd" not in fid_kwargs:
            kwargs["noise_sd"] = noise_for_snr(
                0.15,
                snr,
                linewidth_hz=kwargs["linewidth_hz"],
                bandwidth_hz=kwargs["bandwidth_hz"],
                n_points=kwargs["n_points"],
            )
        fid = synthesize_fid(signals, rng=np.random.default_rng(seed), **kwargs)
        fk = {
            "nucleus": kwargs.get("nucleus", "1H"),
            "b1_freq_mhz": kwargs["b1_freq_mhz"],
            "bandwidth_hz": kwargs["bandwidth_hz"],
            "center_ppm": kwargs["center_ppm"],
        }
        fk.update(folder_kwargs or {})
        return write_spinsolve_folder(tmp_path / f"exp{counter['n']:03d}", fid, **fk)

    return factory
