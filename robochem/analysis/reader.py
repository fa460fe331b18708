"""Read Spinsolve experiment folders and JCAMP-DX FIDs into a checked FID record.

Priority: ``data.1d`` (lossless FID) > ``nmr_fid.dx`` (JCAMP-DX FID) > ``fid.1d``
(Spinsolve Expert) > ``spectrum.1d`` (already transformed; turned back into a FID so the
same processing chain applies). Every problem raises :class:`NMRDataError` naming the file.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robochem.analysis.par import ParFileError, read_par

__all__ = ["FID", "NMRDataError", "ParFileError", "folder_sha256", "read_fid", "read_par"]

_FID_FILES = ("data.1d", "nmr_fid.dx", "fid.1d")
_SPECTRUM_FILES = ("spectrum.1d",)
_HASHED = ("acqu.par", "data.1d", "nmr_fid.dx", "fid.1d", "spectrum.1d", "proc.par")


class NMRDataError(Exception):
    """An NMR data folder or file is missing, incomplete or corrupt."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass
class FID:
    """A complex FID and what is needed to put its spectrum on a ppm axis."""

    data: np.ndarray  # complex128
    sw_hz: float
    obs_mhz: float
    car_hz: float
    nucleus: str
    source: Path  # the file the data came from
    folder: Path
    params: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    from_spectrum: bool = False

    @property
    def n_points(self) -> int:
        return int(self.data.size)

    @property
    def center_ppm(self) -> float:
        return self.car_hz / self.obs_mhz

    @property
    def scans(self) -> int | None:
        value = self.params.get("nrScans")
        return int(value) if isinstance(value, int | float) else None


def folder_sha256(folder: Path) -> str:
    """sha256 over the data files present (name and content, in a fixed order)."""
    digest = hashlib.sha256()
    for name in _HASHED:
        path = folder / name
        if path.is_file():
            digest.update(name.encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _parse_par(path: Path) -> dict[str, Any]:
    """The folder's ``acqu.par`` through the one strict reader (:func:`read_par`); its
    error (file and line) becomes this module's :class:`NMRDataError`."""
    try:
        return read_par(path)
    except ParFileError as exc:
        where = f"line {exc.line}: " if exc.line is not None else ""
        raise NMRDataError(path, where + exc.reason) from None


def _read_1d(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (axis, complex data) from a Spinsolve ``*.1d`` file, checking its layout."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise NMRDataError(path, f"cannot read: {exc}") from None
    if len(raw) < 32:
        raise NMRDataError(path, f"file too short for the 32-byte header ({len(raw)} bytes)")
    header = np.frombuffer(raw[:32], dtype="<i4")
    x_dim = int(header[4])
    body = len(raw) - 32
    if body % 4:
        raise NMRDataError(path, f"data block of {body} bytes is not whole float32 values")
    n_floats = body // 4
    if x_dim <= 0 or n_floats != 3 * x_dim:
        if x_dim > 0 and n_floats < 3 * x_dim:
            raise NMRDataError(
                path, f"truncated: header says {x_dim} points, file holds {n_floats // 3}"
            )
        raise NMRDataError(
            path, f"corrupt header or data: xDim={x_dim} but {n_floats} float32 values"
        )
    values = np.frombuffer(raw, dtype="<f4", offset=32)
    with np.errstate(invalid="ignore", over="ignore"):
        axis = values[:x_dim].astype(np.float64)
        re = values[x_dim::2].astype(np.float64)
        im = values[x_dim + 1 :: 2].astype(np.float64)
    data = re + 1j * im
    return axis, data


def _read_jcamp(path: Path) -> tuple[dict[str, Any], np.ndarray]:
    from nmrglue.fileio import jcampdx

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dic, raw = jcampdx.read(str(path))
    # nmrglue's JCAMP-DX reader has no error type of its own: a malformed file raises
    # whatever its parsing trips on (ValueError, IndexError, KeyError, TypeError, ...), and
    # every one of them means "this file cannot be read" here, reported with its message.
    except Exception as exc:  # noqa: BLE001 - nmrglue raises many types on malformed files
        raise NMRDataError(path, f"cannot parse JCAMP-DX: {exc}") from None
    if not isinstance(raw, list | tuple) or len(raw) != 2 or raw[0] is None or raw[1] is None:
        raise NMRDataError(path, "JCAMP-DX file has no complex (real + imaginary) FID")
    re, im = np.asarray(raw[0], dtype=float), np.asarray(raw[1], dtype=float)
    if re.size != im.size or re.size == 0:
        raise NMRDataError(path, f"real/imaginary pages differ ({re.size} vs {im.size})")
    return dic, re + 1j * im


def _first(dic: dict[str, Any], key: str) -> str | None:
    value = dic.get(key)
    if isinstance(value, list) and value:
        return str(value[0])
    return None


def _axis_from_acqu(par_path: Path, params: dict[str, Any]) -> tuple[float, float, float, str]:
    needed = ("bandwidth", "b1Freq", "lowestFrequency", "rxChannel")
    missing = [k for k in needed if k not in params]
    if missing:
        raise NMRDataError(par_path, f"missing parameter(s) {', '.join(missing)}")
    try:
        sw = float(params["bandwidth"]) * 1000.0
        obs = float(params["b1Freq"])
        car = float(params["lowestFrequency"]) + sw / 2.0
    except (TypeError, ValueError):
        raise NMRDataError(
            par_path, "bandwidth, b1Freq or lowestFrequency is not a number"
        ) from None
    if not (sw > 0 and obs > 0 and np.isfinite(car)):
        raise NMRDataError(par_path, f"implausible bandwidth {sw} Hz or b1Freq {obs} MHz")
    return sw, obs, car, str(params["rxChannel"]).strip().lstrip("^")


def _axis_from_jcamp(path: Path, dic: dict[str, Any]) -> tuple[float, float, float, str]:
    try:
        obs = float(_first(dic, "$BF1") or _first(dic, ".OBSERVEFREQUENCY") or "nan")
        sw = float(_first(dic, "$SW") or "nan") * obs
        sf = _first(dic, "$SF")
        car = (obs - float(sf)) * 1e6 if sf is not None else float("nan")
    except ValueError:
        raise NMRDataError(path, "JCAMP-DX $BF1/$SW/$SF are not numbers") from None
    if not (np.isfinite(obs) and np.isfinite(sw) and np.isfinite(car) and obs > 0 and sw > 0):
        raise NMRDataError(path, "JCAMP-DX header lacks $BF1, $SW or $SF (and no acqu.par)")
    nucleus = (_first(dic, ".OBSERVENUCLEUS") or "?").strip().lstrip("^")
    return sw, obs, car, nucleus


def read_fid(path: str | Path) -> FID:
    """Read a Spinsolve folder (or a single ``.dx`` / ``.1d`` file in one) as a FID."""
    path = Path(path)
    if path.is_file():
        folder, chosen = path.parent, path
    elif path.is_dir():
        folder, chosen = path, None
    else:
        raise NMRDataError(path, "no such folder or file")

    if chosen is None:
        for name in (*_FID_FILES, *_SPECTRUM_FILES):
            if (folder / name).is_file():
                chosen = folder / name
                break
        if chosen is None:
            raise NMRDataError(
                folder, "incomplete folder: no data.1d, nmr_fid.dx, fid.1d or spectrum.1d"
            )

    par_path = folder / "acqu.par"
    params = _parse_par(par_path) if par_path.is_file() else {}

    jdic: dict[str, Any] = {}
    from_spectrum = False
    axis = np.zeros(0)
    if chosen.suffix == ".dx":
        jdic, data = _read_jcamp(chosen)
    elif chosen.suffix == ".1d":
        axis, data = _read_1d(chosen)
        from_spectrum = chosen.name.startswith("spectrum")
        if not from_spectrum and data.size > 1:
            steps = np.diff(axis)
            if not (np.all(np.isfinite(axis)) and np.all(steps > 0)):
                raise NMRDataError(chosen, "time axis is not increasing (corrupt file?)")
    else:
        raise NMRDataError(chosen, "unsupported file type (use .1d or .dx)")

    if params:
        sw, obs, car, nucleus = _axis_from_acqu(par_path, params)
    elif jdic:
        sw, obs, car, nucleus = _axis_from_jcamp(chosen, jdic)
    else:
        raise NMRDataError(par_path, "incomplete folder: acqu.par is missing")

    if data.size < 64:
        raise NMRDataError(chosen, f"only {data.size} points (truncated or empty)")
    if not np.all(np.isfinite(data)):
        raise NMRDataError(chosen, "data contain NaN or infinite values (corrupt file)")
    expected = params.get("nrPnts")
    if isinstance(expected, int) and expected > 0 and not from_spectrum and expected != data.size:
        raise NMRDataError(
            chosen, f"truncated or inconsistent: acqu.par nrPnts={expected}, file has {data.size}"
        )
    if from_spectrum:
        # spectrum.1d holds the FFT; NMR order is ppm decreasing with index (the axis order
        # of real files is unverified, so follow the file's own ppm axis)
        if axis.size > 1 and axis[0] < axis[-1]:
            data = data[::-1]
        data = np.fft.ifft(np.fft.ifftshift(data))

    return FID(
        data=np.ascontiguousarray(data, dtype=np.complex128),
        sw_hz=sw,
        obs_mhz=obs,
        car_hz=car,
        nucleus=nucleus,
        source=chosen,
        folder=folder,
        params=params,
        sha256=folder_sha256(folder),
        from_spectrum=from_spectrum,
    )
