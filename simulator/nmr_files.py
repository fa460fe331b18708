"""Write Spinsolve experiment folders (devices.md 12.5) that nmrglue 0.12 reads back.

Files written:

- ``data.1d``: the FID. Little-endian; a 32-byte header of 8 int32 (owner, format,
  version, dataType, xDim, yDim, zDim, qDim), then float32: ``xDim`` time values in
  seconds followed by ``2·xDim`` interleaved real/imaginary values.
- ``acqu.par``: ``key = value`` lines, strings double-quoted, **no blank lines**.
- ``spectrum.1d`` (optional): same layout, ppm axis then the plain FFT of the FID.
- ``nmr_fid.dx`` (optional): JCAMP-DX 5 NTUPLES FID with AFFN real and imaginary pages.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

__all__ = ["write_1d", "write_acqu_par", "write_jcamp_fid", "write_spinsolve_folder"]

_HEADER_TAGS = (b"SORP", b"ATAD", b"1.1V")
_DATA_TYPE = 504


def write_1d(path: Path, axis: np.ndarray, data: np.ndarray) -> None:
    """Write a Spinsolve ``*.1d`` file: header, float32 axis, interleaved complex."""
    axis = np.asarray(axis, dtype="<f4")
    data = np.asarray(data)
    if axis.shape != data.shape or data.ndim != 1:
        raise ValueError("axis and data must be 1-D arrays of the same length")
    n = data.size
    header = b"".join(_HEADER_TAGS) + struct.pack("<5i", _DATA_TYPE, n, 1, 1, 1)
    inter = np.empty(2 * n, dtype="<f4")
    inter[0::2] = data.real
    inter[1::2] = data.imag
    path.write_bytes(header + axis.tobytes() + inter.tobytes())


def _par_value(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        return repr(round(value, 9))
    return str(value)


def write_acqu_par(path: Path, params: Mapping[str, object]) -> None:
    """Write ``acqu.par``: one ``key = value`` per line, no blank lines."""
    lines = []
    for key, value in params.items():
        text = _par_value(value)
        if "\n" in text or "\n" in key:
            raise ValueError(f"acqu.par entry {key!r} must be a single line")
        lines.append(f"{key} = {text}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_jcamp_fid(
    path: Path,
    fid: np.ndarray,
    *,
    nucleus: str,
    b1_freq_mhz: float,
    bandwidth_hz: float,
    center_ppm: float,
    title: str = "sample",
) -> None:
    """Write a JCAMP-DX 5 NTUPLES FID (AFFN) that ``nmrglue.fileio.jcampdx`` reads.

    nmrglue derives the carrier from ``$SF`` as ``(BF1 − SF)·1e6`` Hz, so ``$SF`` is
    written to make that equal ``center_ppm·BF1``.
    """
    fid = np.asarray(fid, dtype=np.complex128)
    n = fid.size
    dt = 1.0 / bandwidth_hz
    sw_ppm = bandwidth_hz / b1_freq_mhz
    sf = b1_freq_mhz - center_ppm * b1_freq_mhz / 1e6
    re, im = fid.real, fid.imag
    head = [
        f"##TITLE= {title}",
        "##JCAMP-DX= 5.00",
        "##DATA TYPE= NMR FID",
        "##DATA CLASS= NTUPLES",
        "##ORIGIN= robochem simulator",
        "##OWNER= robochem",
        f"##.OBSERVE FREQUENCY= {b1_freq_mhz:.6f}",
        f"##.OBSERVE NUCLEUS= ^{nucleus}",
        f"##$BF1= {b1_freq_mhz:.6f}",
        f"##$SF= {sf:.9f}",
        f"##$SW= {sw_ppm:.9f}",
        f"##$TD= {2 * n}",
        "##NTUPLES= NMR FID",
        "##VAR_NAME= TIME, FID/REAL, FID/IMAG, PAGE NUMBER",
        "##SYMBOL= X, R, I, N",
        "##VAR_TYPE= INDEPENDENT, DEPENDENT, DEPENDENT, PAGE",
        "##VAR_FORM= AFFN, AFFN, AFFN, AFFN",
        f"##VAR_DIM= {n}, {n}, {n}, 2",
        "##UNITS= SECONDS, ARBITRARY UNITS, ARBITRARY UNITS, ",
        f"##FIRST= 0, {re[0]:.9g}, {im[0]:.9g}, 1",
        f"##LAST= {(n - 1) * dt:.9g}, {re[-1]:.9g}, {im[-1]:.9g}, 2",
        "##FACTOR= 1, 1, 1, 1",
    ]
    out = head[:]
    per_line = 8
    for page, (label, values) in enumerate((("R..R", re), ("I..I", im)), start=1):
        out.append(f"##PAGE= N={page}")
        out.append(f"##DATA TABLE= (X++({label})), XYDATA")
        for start in range(0, n, per_line):
            chunk = values[start : start + per_line]
            out.append(f"{start} " + " ".join(f"{v:.9g}" for v in chunk))
    out.append("##END NTUPLES= NMR FID")
    out.append("##END=")
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def write_spinsolve_folder(
    folder: Path,
    fid: np.ndarray,
    *,
    nucleus: str,
    b1_freq_mhz: float,
    bandwidth_hz: float,
    center_ppm: float,
    sample: str = "sample",
    solvent: str = "Acetonitrile",
    protocol: str = "1D EXTENDED+",
    scans: int = 16,
    acq_time_s: float | None = None,
    rep_time_s: float = 10.0,
    user_data: Mapping[str, str] | None = None,
    write_spectrum: bool = True,
    write_jcamp: bool = False,
    when: datetime | None = None,
) -> Path:
    """Write a Spinsolve experiment folder for ``fid`` and return the folder path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fid = np.asarray(fid).astype(np.complex64)
    n = fid.size
    if n == 0:
        raise ValueError("empty FID")
    dt = 1.0 / bandwidth_hz
    t = np.arange(n, dtype=np.float64) * dt
    write_1d(folder / "data.1d", t, fid)

    if write_spectrum:
        spec = np.fft.fftshift(np.fft.fft(fid.astype(np.complex128)))
        sw_ppm = bandwidth_hz / b1_freq_mhz
        first = center_ppm + sw_ppm / 2.0
        ppm = first - np.arange(n) * sw_ppm / n
        write_1d(folder / "spectrum.1d", ppm, spec)

    if write_jcamp:
        write_jcamp_fid(
            folder / "nmr_fid.dx",
            fid,
            nucleus=nucleus,
            b1_freq_mhz=b1_freq_mhz,
            bandwidth_hz=bandwidth_hz,
            center_ppm=center_ppm,
            title=sample,
        )

    stamp = (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    user = ";".join(f"{k}={v}" for k, v in (user_data or {}).items())
    params: dict[str, object] = {
        "Sample": sample,
        "Solvent": solvent,
        "Protocol": protocol,
        "rxChannel": nucleus,
        "b1Freq": float(b1_freq_mhz),
        "bandwidth": float(bandwidth_hz) / 1000.0,
        "lowestFrequency": float(center_ppm * b1_freq_mhz - bandwidth_hz / 2.0),
        "nrPnts": int(n),
        "nrScans": int(scans),
        "acqTime": float(acq_time_s if acq_time_s is not None else n * dt),
        "repTime": float(rep_time_s * 1000.0),
        "CurrentTime": stamp,
        "userData": user,
    }
    write_acqu_par(folder / "acqu.par", params)
    return folder
