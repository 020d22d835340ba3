"""Thin-film interference of the tear film: lipid thickness to camera colour.

The lipid layer (n=1.48) lies between air and the aqueous layer (n=1.337, thick enough to be
incoherent, so taken as semi-infinite). At normal incidence the reflectance of a film of
thickness d at wavelength lambda is ``|(r01 + r12 e^{2i delta}) / (1 + r01 r12 e^{2i delta})|^2``
with ``delta = 2 pi n1 d / lambda``. A camera sees that reflectance weighted by its colour
response over the visible band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_AIR = 1.0
N_LIPID = 1.48
N_AQUEOUS = 1.337
WAVELENGTHS_NM = np.arange(400.0, 701.0, 10.0)


def reflectance(thickness_nm: np.ndarray | float, wavelength_nm: np.ndarray) -> np.ndarray:
    """Reflectance of air/lipid/aqueous, shape ``thickness.shape + wavelength.shape``."""
    d = np.asarray(thickness_nm, dtype=np.float64)[..., None]
    r01 = (N_AIR - N_LIPID) / (N_AIR + N_LIPID)
    r12 = (N_LIPID - N_AQUEOUS) / (N_LIPID + N_AQUEOUS)
    phase = np.exp(4j * np.pi * N_LIPID * d / wavelength_nm)
    r = (r01 + r12 * phase) / (1 + r01 * r12 * phase)
    return np.abs(r) ** 2


@dataclass(frozen=True)
class CameraResponse:
    """Spectral sensitivity of a colour camera, one weight curve per channel (R, G, B)."""

    wavelengths_nm: np.ndarray
    weights: np.ndarray  # (3, n_wavelengths), each row sums to 1

    @classmethod
    def gaussian(
        cls,
        centres_nm: tuple[float, float, float] = (600.0, 540.0, 460.0),
        width_nm: float = 40.0,
    ) -> CameraResponse:
        """A typical Bayer camera under white light: Gaussian R, G, B sensitivities."""
        w = np.exp(
            -0.5 * ((WAVELENGTHS_NM[None, :] - np.asarray(centres_nm)[:, None]) / width_nm) ** 2
        )
        return cls(WAVELENGTHS_NM, w / w.sum(axis=1, keepdims=True))

    def rgb(self, thickness_nm: np.ndarray | float) -> np.ndarray:
        """Channel reflectances (..., 3) of films of the given thickness."""
        return reflectance(thickness_nm, self.wavelengths_nm) @ self.weights.T


def rgb_lut(response: CameraResponse, max_nm: int = 255) -> np.ndarray:
    """Reflectance per whole nanometre 0..max_nm, (max_nm+1, 3) float32, for fast rendering."""
    return response.rgb(np.arange(max_nm + 1, dtype=np.float64)).astype(np.float32)
