"""NMR analysis: raw Spinsolve FID → referenced spectrum → yield against an internal standard.

Typical use::

    from robochem.analysis import AnalysisConfig, analyze_folder

    config = AnalysisConfig.model_validate(protocol["analysis"])
    result = analyze_folder("D:/nmr/c1/exp0042", config, flow_rate_ml_min=0.5)
    if result.status != "rejected":
        tell_optimizer(result.yield_percent)
    store(result.to_dict())

See docs/nmr-analysis.md.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robochem.analysis.config import AnalysisConfig, parse_concentration
    from robochem.analysis.pipeline import analyze_folder
    from robochem.analysis.reader import NMRDataError, read_fid
    from robochem.analysis.result import AnalysisResult

# Imported on first use: nmrglue and scipy take seconds to load, and every ``robochem``
# command (even ``--version``) imports this package's CLI module.
_EXPORTS = {
    "AnalysisConfig": "robochem.analysis.config",
    "parse_concentration": "robochem.analysis.config",
    "analyze_folder": "robochem.analysis.pipeline",
    "NMRDataError": "robochem.analysis.reader",
    "read_fid": "robochem.analysis.reader",
    "AnalysisResult": "robochem.analysis.result",
}

__all__ = [
    "AnalysisConfig",
    "AnalysisResult",
    "NMRDataError",
    "analyze_folder",
    "parse_concentration",
    "read_fid",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'robochem.analysis' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
