"""Draw an analysed spectrum with its integration regions shaded (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

from robochem.analysis.result import AnalysisResult

__all__ = ["plot_result"]

_COLOURS = {
    "internal_standard": "tab:blue",
    "product": "tab:green",
    "substrate": "tab:orange",
    "side_product": "tab:purple",
}


def plot_result(result: AnalysisResult, path: str | Path, *, title: str | None = None) -> Path:
    """Write a PNG (or any format matplotlib infers from ``path``) and return its path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(10, 4.5), dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    if result.plot is not None and result.plot.ppm:
        ax.plot(result.plot.ppm, result.plot.intensity, color="black", linewidth=0.7)
        regions = result.plot.regions
        for n, region in enumerate(regions):
            colour = _COLOURS.get(region["role"], "tab:gray")
            ax.axvspan(region["lo"], region["hi"], color=colour, alpha=0.25, linewidth=0)
            report = result.integrals.get(region["name"])
            label = region["name"]
            if report is not None and report.concentration_M is not None:
                label += f"\n{1000 * report.concentration_M:.2f} mM"
            ax.annotate(
                label,
                xy=(0.5 * (region["lo"] + region["hi"]), 1.0 + 0.07 * (n % 2)),
                xycoords=("data", "axes fraction"),
                ha="center",
                va="bottom",
                fontsize=7,
                color=colour,
            )
        if regions:
            lo = min(r["lo"] for r in regions)
            hi = max(r["hi"] for r in regions)
            pad = max(0.5, 0.3 * (hi - lo))
            ax.set_xlim(hi + pad, lo - pad)
        else:
            ax.invert_xaxis()
    else:
        ax.text(0.5, 0.5, "no spectrum", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"δ / ppm ({result.nucleus or '?'})")
    ax.set_ylabel("intensity")
    yield_text = "rejected" if result.yield_percent is None else f"{result.yield_percent:.1f} %"
    heading = title or f"yield {yield_text} — {result.status}"
    if result.reasons:
        heading += f" ({result.reasons[0][:80]})"
    ax.set_title(heading, fontsize=9, pad=30)
    fig.tight_layout()
    fig.savefig(path)
    return path
