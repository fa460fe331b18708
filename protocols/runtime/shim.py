"""When the engine shims the NMR: the platform's ``fluidics.nmr.shim`` policy, applied to
what the campaign's spectra show.

A benchtop magnet's field drifts after a shim and its lines broaden (about 0.1 Hz an hour
in the simulated Spinsolve). Broad lines overlap their neighbours, which is how a long
campaign's yields started to scatter (docs/virtual-lab.md, section 6). The engine asks
:meth:`ShimSchedule.due` before each experiment and shims when it names a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from robochem.analysis import AnalysisResult
from robochem.analysis.result import standard_line_width_hz

from ..platform import NmrShim


@dataclass
class ShimSchedule:
    policy: NmrShim
    #: simulated time of the last shim, or when the schedule started (before any shim)
    since: float | None = None
    shimmed: bool = False
    #: the last spectrum's standard line width (Hz), measured since the last shim
    line_width_hz: float | None = None
    #: off once a shim failed to bring the line below the limit: shimming again for the
    #: same reason would only repeat itself before every experiment
    width_trigger: bool = True
    _width_due: bool = False  # the reason due() gave is the line width
    _checking: bool = False  # the next spectrum tells whether a width-triggered shim worked
    #: a shim that failed: asked again before the next attempt (after the operator resumes)
    _retry: str | None = None

    def due(self, now: float) -> str | None:
        """Why to shim before the next experiment, or None."""
        p = self.policy
        if self._retry is not None:
            return self._retry
        self._width_due = False
        if self.since is None:
            self.since = now
            if p.at_start:
                return "before the first experiment"
        limit = p.max_line_width.value if p.max_line_width is not None else None
        if (limit is not None and self.width_trigger and self.line_width_hz is not None
                and self.line_width_hz > limit):
            self._width_due = True
            return (f"the internal standard's line is {self.line_width_hz:.2f} Hz wide, above "
                    f"{limit:g} Hz")
        if p.every is not None and now - self.since >= p.every.value:
            hours = (now - self.since) / 3600.0
            return f"{hours:.1f} h since the last shim" if self.shimmed else (
                f"{hours:.1f} h into the campaign")
        return None

    def restore(self, shimmed_at: float, line_width_hz: float | None) -> None:
        """An earlier engine run of the campaign shimmed at ``shimmed_at`` and its spectra
        since then showed ``line_width_hz``: that shim holds (no start-of-run shim) until
        ``every`` has passed or the line says otherwise."""
        self.since, self.shimmed, self.line_width_hz = shimmed_at, True, line_width_hz

    def done(self, now: float) -> None:
        """The shim due() asked for finished at ``now``."""
        self.since, self.shimmed, self.line_width_hz, self._retry = now, True, None, None
        self._checking = self._width_due

    def failed(self, reason: str) -> None:
        """A shim for ``reason`` failed: it is due again before the next experiment."""
        self._retry = reason

    def observe(self, result: AnalysisResult) -> str | None:
        """Note a spectrum's line width; returns a warning when a width-triggered shim did
        not help (the trigger is then switched off for the rest of the run)."""
        width = standard_line_width_hz(result)
        if width is None:
            return None
        self.line_width_hz = width
        limit = self.policy.max_line_width
        checking, self._checking = self._checking, False
        if checking and limit is not None and width > limit.value:
            self.width_trigger = False
            return (f"shimming left the internal standard's line at {width:.2f} Hz, above "
                    f"{limit.value:g} Hz: no more re-shims for line width in this run; "
                    "check the magnet and the sample in the cell")
        return None
