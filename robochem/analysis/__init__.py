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

from robochem.analysis.config import AnalysisConfig, parse_concentration
from robochem.analysis.pipeline import analyze_folder
from robochem.analysis.reader import NMRDataError, read_fid
from robochem.analysis.result import AnalysisResult

__all__ = [
    "AnalysisConfig",
    "AnalysisResult",
    "NMRDataError",
    "analyze_folder",
    "parse_concentration",
    "read_fid",
]
