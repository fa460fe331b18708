"""NMR analysis benchmark: speed (folder → result) and yield accuracy on synthetic spectra.

Run::

    .venv/bin/python -m benchmarks.nmr_analysis            # default: 40 spectra per SNR
    .venv/bin/python -m benchmarks.nmr_analysis --n 100 --threads 2

Speed: median and p95 wall time per 32k-point 1H folder, from files on disk to the result
object (read, process, fit, QC, plot decimation), plus the process CPU time, which is less
sensitive to other load on the machine. Accuracy: random spectra with known truth
(:func:`robochem.simulator.nmr_synth.make_case`) at several SNRs, 1H and 19F, for the
lineshape fit and, for comparison, plain window integration.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _limit_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))


def _speed(tmp: Path, repeats: int) -> dict[str, float]:
    from robochem.analysis import AnalysisConfig, analyze_folder
    from robochem.simulator.nmr_files import write_spinsolve_folder
    from robochem.simulator.nmr_synth import make_case

    folders = []
    configs = []
    for i in range(8):
        rng = np.random.default_rng(9000 + i)
        case = make_case(rng, nucleus="1H", snr=300.0, n_points=32768)
        folders.append(
            write_spinsolve_folder(tmp / f"speed{i}", case.fid(rng), **case.folder_kwargs)
        )
        configs.append(AnalysisConfig.model_validate(case.analysis))
    analyze_folder(folders[0], configs[0])  # warm-up (imports, caches)
    wall, cpu = [], []
    for r in range(repeats):
        k = r % len(folders)
        t0, c0 = time.perf_counter(), time.process_time()
        analyze_folder(folders[k], configs[k])
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    w, c = np.asarray(wall) * 1e3, np.asarray(cpu) * 1e3
    return {
        "median_ms": float(np.median(w)),
        "p95_ms": float(np.percentile(w, 95)),
        "cpu_median_ms": float(np.median(c)),
    }


def _accuracy(
    tmp: Path, nucleus: str, snr: float, n: int, n_points: int, method: str
) -> dict[str, float]:
    from robochem.analysis import AnalysisConfig, analyze_folder
    from robochem.simulator.nmr_files import write_spinsolve_folder
    from robochem.simulator.nmr_synth import make_case

    errs, conv, rejected, warned = [], [], 0, 0
    for i in range(n):
        rng = np.random.default_rng(10_000 + i)
        case = make_case(rng, nucleus=nucleus, snr=snr, n_points=n_points)
        folder = write_spinsolve_folder(tmp / f"acc{i}", case.fid(rng), **case.folder_kwargs)
        block = dict(case.analysis)
        block["processing"] = {"integration": method}
        result = analyze_folder(folder, AnalysisConfig.model_validate(block))
        if result.yield_percent is None:
            rejected += 1
            continue
        warned += result.status == "warning"
        errs.append(result.yield_percent - case.true_yield_percent)
        if result.conversion_percent is not None:
            conv.append(result.conversion_percent - case.true_conversion_percent)
    e = np.abs(np.asarray(errs)) if errs else np.asarray([np.nan])
    return {
        "mean_abs": float(e.mean()),
        "max_abs": float(e.max()),
        "bias": float(np.mean(errs)) if errs else float("nan"),
        "conv_mean_abs": float(np.mean(np.abs(conv))) if conv else float("nan"),
        "rejected": rejected,
        "warning": warned,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40, help="spectra per SNR level")
    parser.add_argument("--repeats", type=int, default=60, help="timed analyses")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--snr", default="50,100,200,500,1000,2000")
    parser.add_argument("--skip-window", action="store_true", help="no window comparison")
    args = parser.parse_args()
    _limit_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        speed = _speed(tmp, args.repeats)
        print("speed, 32k-point 1H folder -> result")
        print(
            f"  median {speed['median_ms']:.1f} ms   p95 {speed['p95_ms']:.1f} ms   "
            f"CPU median {speed['cpu_median_ms']:.1f} ms   (load avg {os.getloadavg()[0]:.1f})"
        )
        print()
        header = (
            f"{'nucleus':7} {'points':>6} {'method':9} {'SNR':>6} {'n':>4} {'mean|err|':>9} "
            f"{'max|err|':>9} {'bias':>7} {'conv':>7} {'warn':>5} {'rej':>4}"
        )
        print("yield accuracy, absolute percent (SNR: IS height / noise SD, plain FFT)")
        print(header)
        print("-" * len(header))
        methods = ["lineshape"] if args.skip_window else ["lineshape", "window"]
        for nucleus, n_points in (("1H", 16384), ("19F", 32768)):
            for method in methods:
                for snr in (float(s) for s in args.snr.split(",")):
                    r = _accuracy(tmp, nucleus, snr, args.n, n_points, method)
                    print(
                        f"{nucleus:7} {n_points:>6} {method:9} {snr:>6.0f} {args.n:>4} "
                        f"{r['mean_abs']:>9.3f} {r['max_abs']:>9.3f} {r['bias']:>7.3f} "
                        f"{r['conv_mean_abs']:>7.3f} {r['warning']:>5} {r['rejected']:>4}"
                    )


if __name__ == "__main__":
    main()
