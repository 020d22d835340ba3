"""Lipid tracking: displacement of the interference pattern relative to the eye since a blink.

Three methods, as in the paper: sparse Lucas-Kanade on features seeded in the tracked region
(default: fast and precise), Farneback dense flow over the region, and SSD template matching.
Each gives per-feature displacements relative to the eye; a robust aggregate (median after
rejecting outliers by their median absolute deviation) is the layer's displacement.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .config import FlowMethod

LK_LEVELS = 3
LK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)
WINDOW_FRACTION = 1 / 23  # LK window and feature spacing scale with the frame (21 px at 480)
FB_MAX_PX = 0.7  # forward-backward disagreement beyond which a feature is lost
RESEED_BELOW = 0.6  # reseed when fewer than this share of max_features survive


@dataclass(frozen=True, slots=True)
class LipidSample:
    """The layer's displacement relative to the eye since the interval start, and its features."""

    dx_px: float
    dy_px: float
    points: np.ndarray  # (N, 2) float32 x, y
    ids: np.ndarray  # (N,) int64, stable while a feature lives
    point_dy_px: np.ndarray  # (N,) float32


def robust_median(values: np.ndarray) -> tuple[float, np.ndarray]:
    """Median after rejecting values more than 3 robust sigmas from it; and the inlier mask."""
    med = float(np.median(values))
    mad = 1.4826 * float(np.median(np.abs(values - med)))
    keep = np.abs(values - med) <= max(3.0 * mad, 0.5)
    return float(np.median(values[keep])), keep


class LucasKanadeTracker:
    """Pyramidal LK on good features in the tracked region, reseeded as features are lost."""

    def __init__(self, max_features: int = 150) -> None:
        self.max_features = max_features
        self._next_id = 0
        self.reset()

    def reset(self) -> None:
        """Drop all features (a blink ended or the stream restarted)."""
        self._prev: np.ndarray | None = None
        self._pts = np.zeros((0, 1, 2), np.float32)
        self._ids = np.zeros(0, np.int64)
        self._origin = np.zeros((0, 2), np.float32)  # feature position minus eye, when seeded
        self._base = np.zeros((0, 2), np.float32)  # layer displacement when the feature was seeded
        self._last = (0.0, 0.0)
        self._seed_xy = np.zeros((0, 1, 2), np.float32)  # where each feature was seeded
        self._gen = np.zeros(0, np.int64)  # which seeding (frame) each feature came from
        self._seed_img: dict[int, np.ndarray] = {}  # the frame of each seeding
        self._next_gen = 0

    def start(self, gray: np.ndarray, mask: np.ndarray, eye_xy: tuple[float, float]) -> None:
        """Seed features on the first open frame of an interval."""
        self.reset()
        self._win = max(9, int(gray.shape[0] * WINDOW_FRACTION) | 1)
        self._spacing = max(4, self._win // 2 - 2)
        self._seed(gray, mask, eye_xy)
        self._prev = gray

    def push(self, gray: np.ndarray, mask: np.ndarray, eye_xy: tuple[float, float]) -> LipidSample:
        """Follow the features into ``gray``; ``mask`` is where the layer may be tracked now."""
        if self._prev is None:
            self.start(gray, mask, eye_xy)
        elif len(self._pts):
            lk = {"winSize": (self._win, self._win), "maxLevel": LK_LEVELS, "criteria": LK_CRITERIA}
            nxt, st, _ = cv2.calcOpticalFlowPyrLK(self._prev, gray, self._pts, None, **lk)
            back, st2, _ = cv2.calcOpticalFlowPyrLK(gray, self._prev, nxt, None, **lk)
            fb = np.linalg.norm((back - self._pts).reshape(-1, 2), axis=1)
            xy = nxt.reshape(-1, 2)
            h, w = gray.shape
            xi = np.clip(xy[:, 0], 0, w - 1).astype(int)
            yi = np.clip(xy[:, 1], 0, h - 1).astype(int)
            ok = (st.ravel() == 1) & (st2.ravel() == 1) & (fb < FB_MAX_PX) & (mask[yi, xi] > 0)
            self._keep(ok, nxt)
            self._refine_against_seed(gray)
        if len(self._pts) < RESEED_BELOW * self.max_features:
            self._seed(gray, mask, eye_xy)
        self._prev = gray
        return self._sample(eye_xy)

    def _keep(self, ok: np.ndarray, nxt: np.ndarray) -> None:
        self._pts = nxt[ok]
        self._ids, self._origin, self._base = self._ids[ok], self._origin[ok], self._base[ok]
        self._seed_xy, self._gen = self._seed_xy[ok], self._gen[ok]
        for g in set(self._seed_img) - set(self._gen.tolist()):
            del self._seed_img[g]  # no feature left from that seeding

    def _refine_against_seed(self, gray: np.ndarray) -> None:
        """Re-measure each feature from the frame it was seeded in, starting where it is now.

        Frame-to-frame steps are sub-pixel, and each is pulled slightly towards the eye-fixed
        texture behind the film; measured from the seed frame, those errors do not add up.
        """
        for g, seed_img in self._seed_img.items():
            sel = np.flatnonzero(self._gen == g)
            guess = self._pts[sel].copy()
            refined, st, _ = cv2.calcOpticalFlowPyrLK(
                seed_img,
                gray,
                self._seed_xy[sel],
                guess.copy(),
                winSize=(self._win, self._win),
                maxLevel=1,
                criteria=LK_CRITERIA,
                flags=cv2.OPTFLOW_USE_INITIAL_FLOW,
            )
            near = np.linalg.norm((refined - guess).reshape(-1, 2), axis=1) < 2.0
            good = (st.ravel() == 1) & near
            self._pts[sel[good]] = refined[good]

    def _seed(self, gray: np.ndarray, mask: np.ndarray, eye_xy: tuple[float, float]) -> None:
        want = self.max_features - len(self._pts)
        if want <= 0:
            return
        free = mask.copy()
        for x, y in self._pts.reshape(-1, 2):
            cv2.circle(free, (int(x), int(y)), self._spacing, 0, -1)
        new = cv2.goodFeaturesToTrack(
            gray, want, qualityLevel=0.01, minDistance=self._spacing, mask=free, blockSize=7
        )
        if new is None:
            return
        new = new.astype(np.float32)
        n = len(new)
        eye = np.float32(eye_xy)
        self._pts = np.concatenate([self._pts, new])
        self._ids = np.concatenate([self._ids, np.arange(self._next_id, self._next_id + n)])
        self._next_id += n
        self._origin = np.concatenate([self._origin, new.reshape(-1, 2) - eye])
        self._base = np.concatenate([self._base, np.tile(np.float32(self._last), (n, 1))])
        self._seed_xy = np.concatenate([self._seed_xy, new])
        self._gen = np.concatenate([self._gen, np.full(n, self._next_gen)])
        self._seed_img[self._next_gen] = gray
        self._next_gen += 1

    def _sample(self, eye_xy: tuple[float, float]) -> LipidSample:
        xy = self._pts.reshape(-1, 2)
        d = xy - np.float32(eye_xy) - self._origin + self._base
        if len(d) >= 3:
            dy, keep = robust_median(d[:, 1])
            dx = float(np.median(d[keep, 0]))
            self._last = (dx, dy)
        return LipidSample(*self._last, xy.copy(), self._ids.copy(), d[:, 1].astype(np.float32))


class _ReferenceTracker:
    """Farneback and SSD: displacement of the region from the interval's first frame.

    Measuring against the first frame (with the last estimate as the starting guess), rather
    than adding up frame-to-frame steps, keeps sub-pixel errors from accumulating into drift.
    """

    def __init__(self, max_features: int = 150) -> None:
        self.max_features = max_features
        self.reset()

    def reset(self) -> None:
        """Forget the interval."""
        self._ref: np.ndarray | None = None
        self._ref_mask = np.zeros((0, 0), np.uint8)
        self._ref_eye = np.zeros(2)
        self._guess = np.zeros(2)  # the region's motion in the image, eye included
        self._disp = np.zeros(2)
        self._pts = np.zeros((0, 2), np.float32)

    def start(self, gray: np.ndarray, mask: np.ndarray, eye_xy: tuple[float, float]) -> None:
        """First open frame of an interval: the reference."""
        self.reset()
        self._ref, self._ref_mask, self._ref_eye = gray, mask, np.asarray(eye_xy, float)

    def push(self, gray: np.ndarray, mask: np.ndarray, eye_xy: tuple[float, float]) -> LipidSample:
        """The layer's displacement from the reference, minus the eye's."""
        if self._ref is None:
            self.start(gray, mask, eye_xy)
            return self._sample(np.zeros((0, 2)))
        flows = self._measure(self._ref, gray, self._ref_mask)
        if len(flows):
            dy, keep = robust_median(flows[:, 1])
            self._guess = np.array([float(np.median(flows[keep, 0])), dy])
            self._disp = self._guess - (np.asarray(eye_xy, float) - self._ref_eye)
        return self._sample(flows)

    def _sample(self, flows: np.ndarray) -> LipidSample:
        n = len(self._pts)
        dy = flows[:, 1].astype(np.float32) if len(flows) == n else np.zeros(n, np.float32)
        pts = self._pts + self._guess.astype(np.float32)  # where the samples are now
        return LipidSample(
            float(self._disp[0]), float(self._disp[1]), pts, np.arange(n, dtype=np.int64), dy
        )

    def _measure(self, ref: np.ndarray, cur: np.ndarray, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class FarnebackTracker(_ReferenceTracker):
    """Dense Farneback flow over the tracked region's bounding box (the paper's dense method)."""

    def reset(self) -> None:
        """Forget the interval and its last flow field."""
        super().reset()
        self._flow: np.ndarray | None = None

    def _measure(self, ref: np.ndarray, cur: np.ndarray, mask: np.ndarray) -> np.ndarray:
        # the box around the region, with room for the layer to move, at half resolution: the
        # low-passed pattern is too smooth at full resolution for Farneback's local polynomials
        bx, by, bw, bh = cv2.boundingRect(mask)
        if bw < 16 or bh < 16:
            return np.zeros((0, 2))
        m = ref.shape[0] // 10
        x0, y0 = max(0, bx - m), max(0, by - m)
        x1, y1 = min(ref.shape[1], bx + bw + m), min(ref.shape[0], by + bh + m)
        a = cv2.resize(ref[y0:y1, x0:x1], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        b = cv2.resize(cur[y0:y1, x0:x1], None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        flags = cv2.OPTFLOW_USE_INITIAL_FLOW if self._flow is not None else 0
        self._flow = cv2.calcOpticalFlowFarneback(a, b, self._flow, 0.5, 3, 15, 3, 5, 1.1, flags)
        gy, gx = np.mgrid[by + 8 : by + bh : 16, bx + 8 : bx + bw : 16]
        inside = mask[gy, gx] > 0
        self._pts = np.column_stack([gx[inside], gy[inside]]).astype(np.float32)
        hy = np.clip((gy[inside] - y0) // 2, 0, a.shape[0] - 1)
        hx = np.clip((gx[inside] - x0) // 2, 0, a.shape[1] - 1)
        return 2.0 * self._flow[hy, hx].astype(np.float64)


class SSDTracker(_ReferenceTracker):
    """Template matching (sum of squared differences) of reference patches on a grid."""

    PATCH, SEARCH = 24, 12

    def _measure(self, ref: np.ndarray, cur: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if not len(self._pts):
            ys, xs = np.nonzero(mask[:: self.PATCH, :: self.PATCH])
            centres = np.column_stack([xs, ys]) * self.PATCH
            if len(centres) > 32:  # an even subset keeps the cost bounded
                centres = centres[np.linspace(0, len(centres) - 1, 32).astype(int)]
            self._pts = centres.astype(np.float32)
        h, w = cur.shape
        p, s = self.PATCH // 2, self.SEARCH
        gx, gy = np.round(self._guess).astype(int)
        flows = []
        for cx, cy in self._pts.astype(int):
            sx, sy = cx + gx, cy + gy  # search around where the last estimate puts the patch
            if not (
                p <= cx < w - p
                and p <= cy < h - p
                and p + s <= sx < w - p - s
                and p + s <= sy < h - p - s
            ):
                flows.append((np.nan, np.nan))
                continue
            tmpl = ref[cy - p : cy + p, cx - p : cx + p]
            win = cur[sy - p - s : sy + p + s, sx - p - s : sx + p + s]
            res = cv2.matchTemplate(win, tmpl, cv2.TM_SQDIFF)
            _, _, (mx, my), _ = cv2.minMaxLoc(res)  # least squared difference
            fx, fy = _subpixel(res, mx, my)
            flows.append((fx - s + gx, fy - s + gy))
        out = np.asarray(flows, np.float64).reshape(-1, 2)
        return out[np.isfinite(out).all(axis=1)] if not np.isfinite(out).all() else out


def _subpixel(res: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """Parabolic refinement of a minimum of a matching cost surface."""

    def vertex(a: float, b: float, c: float) -> float:
        d = a - 2 * b + c
        return 0.0 if abs(d) < 1e-9 else float(np.clip(0.5 * (a - c) / d, -0.5, 0.5))

    h, w = res.shape
    fx = vertex(res[y, x - 1], res[y, x], res[y, x + 1]) if 0 < x < w - 1 else 0.0
    fy = vertex(res[y - 1, x], res[y, x], res[y + 1, x]) if 0 < y < h - 1 else 0.0
    return x + fx, y + fy


def make_lipid_tracker(
    method: FlowMethod, max_features: int
) -> LucasKanadeTracker | _ReferenceTracker:
    """The tracker for a configured flow method."""
    cls = {
        FlowMethod.LUCAS_KANADE: LucasKanadeTracker,
        FlowMethod.FARNEBACK: FarnebackTracker,
        FlowMethod.SSD: SSDTracker,
    }[FlowMethod(method)]
    return cls(max_features)
