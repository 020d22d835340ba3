"""The ``tfll`` command: analyse recorded streams, write synthetic ones, and more.

Adding a subcommand: write ``add_<name>(subparsers)`` that registers its parser (with
``parents=[COMMON]``) and sets ``run`` to a function taking the parsed arguments and returning
the exit status, then list it in ``SUBCOMMANDS``. Keep heavy imports (pymmcore-plus, napari)
inside ``run`` so ``tfll --help`` stays fast. Bad input is raised as StreamError, ValueError or
OSError with a one-line message; ``main`` prints it as ``tfll: error: ...`` (traceback only
with ``--debug``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import __version__

if TYPE_CHECKING:
    import numpy as np

    from .tracking import TrackerConfig
    from .visit import Visit

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line usage errors."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


COMMON = argparse.ArgumentParser(add_help=False)
# SUPPRESS: a subcommand's default must not overwrite ``tfll --debug <command>``
COMMON.add_argument(
    "--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error"
)


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _size(text: str) -> int:
    from .acquisition.limits import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


_size.__name__ = "size"


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of minutes, got {text}")
    return value


_minutes.__name__ = "minutes"


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


class ProgressLine:
    """One self-overwriting line on a terminal: frames, percent, frames/s (redrawn ~10x a second).

    Silent when ``stream`` is not a terminal (logs, pipes), where the summary line suffices.
    """

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        live: bool | None = None,
        interval_s: float = 0.1,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.label, self.interval_s = label, interval_s
        self.start = time.monotonic()
        self._last = -1.0
        self._width = 0

    def __call__(self, done: int, total: int | None) -> None:
        """Redraw the line after ``done`` of ``total`` frames (if due)."""
        now = time.monotonic()
        if not self.live or (now - self._last < self.interval_s and done != total):
            return
        self._last = now
        rate = done / max(now - self.start, 1e-9)
        if total:
            frac = min(done / total, 1.0)
            bar = "#" * int(24 * frac)
            text = (
                f"{self.label} [{bar:<24}] {done}/{total} frames {100 * frac:3.0f}% "
                f"{rate:.0f} frames/s"
            )
        else:
            text = f"{self.label} {done} frames {rate:.0f} frames/s"
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def finish(self) -> None:
        """End the line so what follows starts on its own."""
        if self.live and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


# -- analyze --------------------------------------------------------------------------------------


def add_analyze(sub: Any) -> None:
    """``tfll analyze INPUT``: the contract of spec/analysis-output.md."""
    p = sub.add_parser(
        "analyze",
        parents=[COMMON],
        help="track a recorded stream",
        description="Track a recorded stream frame by frame and write results.json and frames.csv.",
    )
    p.add_argument(
        "input", metavar="INPUT", help="TIFF/OME-TIFF stack, video (mp4, avi) or OME-Zarr recording"
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        help="output directory (default: <INPUT stem>.tfll/ beside INPUT)",
    )
    _add_analysis_options(p)
    _add_visit_options(p)
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an earlier analysis in the output folder (once the new one is complete)",
    )
    p.set_defaults(run=run_analyze)


def _add_analysis_options(p: argparse.ArgumentParser) -> None:
    """The options of an analysis, shared by ``tfll analyze`` and ``tfll batch``."""
    from .tracking import Enhancement, FlowMethod

    p.add_argument("--fps", type=_positive(float), help="frame rate (overrides the file's)")
    p.add_argument(
        "--enhancement",
        choices=[e.value for e in Enhancement],
        help="enhancement of the interference pattern",
    )
    p.add_argument("--flow", choices=[f.value for f in FlowMethod], help="lipid tracking method")
    _add_calibration_option(p)
    _add_pixel_size_option(p, "the recording's, when INPUT is one")


def tracker_config_from_args(args: argparse.Namespace) -> TrackerConfig:
    """The tracker's settings the command line chose (a bad calibration file fails here)."""
    from .thickness import checked_calibration
    from .tracking import TrackerConfig

    settings = {k: getattr(args, k) for k in ("enhancement", "flow") if getattr(args, k)}
    settings["thickness_calibration"] = checked_calibration(args.calibration)
    return TrackerConfig(**settings)


def run_analyze(args: argparse.Namespace) -> int:
    """Analyse one stream, with a progress line, and print a one-line summary."""
    from .analyze import analyze
    from .io import read_results

    config = tracker_config_from_args(args)
    progress = ProgressLine(Path(args.input).name)
    try:
        out_dir = analyze(
            args.input,
            out=args.out,
            fps=args.fps,
            config=config,
            progress=progress,
            force=args.force,
            visit=visit_from_args(args),
            pixel_size_um=args.pixel_size_um,
        )
    finally:
        progress.finish()
    elapsed = time.monotonic() - progress.start
    results = read_results(out_dir)
    lost = lost_frames_line(results)
    if lost:
        print(f"tfll: warning: {lost}", file=sys.stderr)
    print(summary_line(results, elapsed, out_dir))
    return EXIT_OK


def lost_frames_line(results: dict[str, Any]) -> str | None:
    """Name the frames missing or damaged in the file, in one line (None when there are none)."""
    lost = results.get("lost_frames") or {}
    if not lost.get("count"):
        return None
    frames = lost.get("frames", [])
    shown = ", ".join(str(f) for f in frames[:10]) + (", ..." if lost["count"] > 10 else "")
    return (
        f"{results['source']}: {lost['count']} frame(s) missing or damaged in the file "
        f"({shown}: {'; '.join(lost.get('reasons', []))}); the other frames were analysed, "
        "and tracking started over after each gap"
    )


def summary_line(results: dict[str, Any], elapsed_s: float, out_dir: Path) -> str:
    """Say what an analysis found, in one line."""
    n = results["n_frames"]
    blinks = results["blinks"]
    partial = sum(not b["complete"] for b in blinks)
    taus = [
        iv["spread"]["tau_s"]
        for iv in results["intervals"]
        if iv.get("spread") and iv["spread"].get("tau_s") is not None
    ]
    tau = f", median tau {statistics.median(taus):.2f} s" if taus else ""
    n_resets = (results.get("resets") or {}).get("count", 0)
    resets = f", {n_resets} tracker resets (bad frames)" if n_resets else ""
    return (
        f"{results['source']}: {n} frames in {elapsed_s:.1f} s "
        f"({n / max(elapsed_s, 1e-9):.0f} frames/s): {len(blinks)} blinks ({partial} partial), "
        f"{len(results['intervals'])} intervals{tau}{resets} -> {out_dir}"
    )


# -- batch ----------------------------------------------------------------------------------------


def add_batch(sub: Any) -> None:
    """``tfll batch INPUTS... --out STUDY_DIR``: a study's recordings in parallel on Dask."""
    p = sub.add_parser(
        "batch",
        parents=[COMMON],
        help="analyse many recordings in parallel into one study",
        description="Analyse every recording the inputs name, each exactly as tfll analyze "
        "does, in parallel on Dask (a local cluster of worker processes, or an existing "
        "dask.distributed scheduler), into STUDY_DIR/<recording>/, and write the study's "
        "tables (study.csv/.parquet: one row per interval; recordings.csv/.parquet: one per "
        "recording). A recording already analysed with the same input file, settings and tfll "
        "version is skipped. Exit status 1 when any recording failed.",
    )
    p.add_argument(
        "inputs",
        metavar="INPUT",
        nargs="+",
        help="a recording (TIFF/OME-TIFF, video, OME-Zarr), a folder to search, or a glob",
    )
    p.add_argument(
        "--out", metavar="STUDY_DIR", type=Path, required=True, help="the study folder"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        metavar="N",
        type=_positive(int),
        help="worker processes of the local cluster (default: one per core)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running dask.distributed scheduler (tcp://host:8786) whose workers see the "
        "same paths",
    )
    _add_analysis_options(p)
    p.add_argument(
        "--no-reports",
        dest="reports",
        action="store_false",
        help="do not write each recording's report.html",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="redo recordings already analysed, and replace analyses that are not current",
    )
    p.set_defaults(run=run_batch)


def run_batch(args: argparse.Namespace) -> int:
    """Run the study with a progress bar; name each failure in one line; say what was done."""
    from .batch import COMPLETE, FAILED, SKIPPED, AnalysisOptions, Outcome
    from .batch import run_batch as batch

    options = AnalysisOptions(
        fps=args.fps,
        config=tracker_config_from_args(args),
        pixel_size_um=args.pixel_size_um,
        reports=args.reports,
    )
    bar: Any = None

    def started(n_todo: int, n_skipped: int, n_refused: int, dashboard: str | None) -> None:
        nonlocal bar
        notes = [f"{n_skipped} already analysed and current"] if n_skipped else []
        notes += [f"{n_refused} refused"] if n_refused else []
        note = f" ({', '.join(notes)})" if notes else ""
        n_total = n_todo + n_skipped + n_refused
        print(f"tfll batch: {n_todo} of {n_total} recordings to analyse{note}", file=sys.stderr)
        if dashboard:
            print(f"tfll batch: Dask dashboard: {dashboard}", file=sys.stderr)
        if n_todo:
            try:
                from tqdm import tqdm
            except ImportError:  # the batch extra brings it; the run needs no bar
                return
            # count, rate and time left; on a terminal only (logs get the lines below)
            bar = tqdm(total=n_todo, unit="rec", file=sys.stderr, disable=None, smoothing=0.1)

    def ended(outcome: Outcome) -> None:
        if outcome.status == FAILED:
            where = "" if outcome.input in (outcome.reason or "") else f" ({outcome.input})"
            line = f"tfll batch: failed: {outcome.name}{where}: {outcome.reason}"
            if bar is not None and not bar.disable:
                bar.write(line, file=sys.stderr)
            else:
                print(line, file=sys.stderr)
        if bar is not None and outcome.status != SKIPPED:
            bar.update(1)

    try:
        result = batch(
            args.inputs,
            args.out,
            options,
            workers=args.workers,
            scheduler=args.scheduler,
            force=args.force,
            on_start=started,
            on_outcome=ended,
        )
    finally:
        if bar is not None:
            bar.close()
    done, skipped, failed = (result.count(s) for s in (COMPLETE, SKIPPED, FAILED))
    print(
        f"{len(result.outcomes)} recordings: {done} analysed, {skipped} skipped (current), "
        f"{failed} failed, in {result.wall_s:.1f} s -> {args.out} (study.csv, study.parquet, "
        "recordings.csv, recordings.parquet)"
    )
    return EXIT_FAILED if failed else EXIT_OK


# -- synth ----------------------------------------------------------------------------------------


def add_synth(sub: Any) -> None:
    """``tfll synth OUT``: a synthetic interferometer stream with its ground truth."""
    from .synth import PRESETS

    p = sub.add_parser(
        "synth",
        parents=[COMMON],
        help="write a synthetic stream with ground truth",
        description="Write a synthetic micro-interferometer stream as OME-TIFF (*.ome.tif), "
        "H.264 video (*.mp4) or MJPEG video (*.avi), with its ground truth (.truth.json) "
        "beside it. Presets: "
        + "; ".join(f"{name}: {why}" for name, (why, _) in PRESETS.items())
        + ". Options given override the preset.",
    )
    p.add_argument("out", metavar="OUT", type=Path, help="*.ome.tif, *.mp4 or *.avi")
    p.add_argument(
        "--preset", choices=list(PRESETS), default="classic", help="what the stream shows"
    )
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--frames", type=_positive(int), help="number of frames")
    p.add_argument("--fps", type=_positive(float), help="frame rate")
    p.add_argument("--height", type=_positive(int), help="frame height, at least 64")
    p.add_argument("--width", type=_positive(int), help="frame width, at least 64")
    p.add_argument(
        "--mono", action="store_const", const=True, help="monochrome frames instead of RGB"
    )
    p.add_argument("--bit-depth", type=int, choices=(8, 12, 16))
    p.add_argument("--partial-fraction", type=_fraction, help="share of partial blinks")
    p.add_argument(
        "--drift",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="steady upward drift after the spread, px/s, drawn per interval (default none)",
    )
    p.add_argument(
        "--force", action="store_true", help="replace OUT and its ground truth if they exist"
    )
    p.set_defaults(run=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    """Render and write the stream; say where the frames and the truth went."""
    from .io import check_output
    from .synth import SyntheticStream, preset, truth_path_for, write_stream

    name = args.out.name.lower()
    video = name.endswith((".mp4", ".avi"))
    if not (video or name.endswith((".tif", ".tiff"))):
        raise ValueError(f"{args.out}: name the output *.ome.tif, *.mp4 or *.avi")
    if not args.out.parent.is_dir():
        raise ValueError(f"{args.out}: directory {args.out.parent} does not exist")
    for path in (args.out, truth_path_for(args.out)):
        check_output(path, args.force, "choose another OUT")
    changes = {
        key: value
        for key, value in {
            "seed": args.seed,
            "n_frames": args.frames,
            "fps": args.fps,
            "height": args.height,
            "width": args.width,
            "rgb": None if args.mono is None else not args.mono,
            "bit_depth": args.bit_depth,
            "partial_blink_fraction": args.partial_fraction,
            "drift_px_s": None if args.drift is None else tuple(args.drift),
        }.items()
        if value is not None
    }
    # the file's kind decides: a TIFF holds the frames as rendered, a video as its codec has them
    codec = ("h264" if name.endswith(".mp4") else "mjpeg") if video else None
    cfg = preset(args.preset, **changes, video=codec)
    stream = SyntheticStream(cfg)
    truth = write_stream(stream, args.out)
    kind = "RGB" if cfg.rgb else "mono"
    print(
        f"wrote {args.out} ({args.preset}: {cfg.n_frames} frames, {cfg.height}x{cfg.width} "
        f"{kind} {cfg.bit_depth}-bit, {cfg.fps:g} frames/s, {len(stream.truth.blinks)} blinks); "
        f"ground truth: {truth}"
    )
    return EXIT_OK


# -- demo -----------------------------------------------------------------------------------------


def add_demo(sub: Any) -> None:
    """``tfll demo``: napari with the TFLL Live dock streaming the synthetic camera."""
    p = sub.add_parser(
        "demo",
        parents=[COMMON],
        help="open napari streaming the synthetic camera",
        description="Open napari with the TFLL Live dock already streaming and "
        "tracking the embedded synthetic interferometer camera.",
    )
    p.add_argument(
        "--fps",
        type=_positive(float),
        default=45.0,
        help="frame rate of the synthetic camera (default 45)",
    )
    p.add_argument(
        "--duration",
        metavar="S",
        type=_positive(float),
        help="close the window after S seconds (default: when you close it)",
    )
    p.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """Check for a display and napari, then hand over to the napari plugin's demo."""
    import importlib.util

    from napari_plugin.demo import display_problem

    problem = display_problem()
    if problem is not None:
        print(f"tfll: {problem}", file=sys.stderr)
        return EXIT_FAILED
    if importlib.util.find_spec("napari") is None:
        print("tfll: tfll demo needs napari: pip install 'tfll-live[napari]'", file=sys.stderr)
        return EXIT_FAILED
    from napari_plugin.demo import run_demo as demo

    return demo(fps=args.fps, duration_s=args.duration)


# -- live -----------------------------------------------------------------------------------------


def add_live(sub: Any) -> None:
    """``tfll live``: headless live acquisition, tracking and recording."""
    p = sub.add_parser(
        "live",
        parents=[COMMON],
        help="track (and record) a camera live, headless",
        description="Acquire from a Micro-Manager camera (default: the synthetic "
        "interferometer), track every frame and optionally record; Ctrl-C stops "
        "and finalises the recording.",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--config",
        metavar="CFG",
        type=Path,
        help="Micro-Manager configuration file (default: the synthetic camera)",
    )
    source.add_argument(
        "--replay",
        metavar="PATH",
        type=Path,
        help="replay a recorded stream (anything tfll analyze reads) as the camera",
    )
    p.add_argument(
        "--record",
        metavar="OUT",
        type=Path,
        help="record to OUT (never overwritten: a free name is picked and reported)",
    )
    p.add_argument(
        "--format",
        choices=("ome-zarr", "ome-tiff"),
        default="ome-zarr",
        help="recording format (default ome-zarr)",
    )
    p.add_argument(
        "--max-size",
        metavar="SIZE",
        type=_size,
        help="stop the recording before it takes more than SIZE on disk (bytes, or with K, M, "
        "G, T in 1024s: 500M, 2G), then end the session",
    )
    p.add_argument(
        "--max-minutes",
        metavar="M",
        type=_minutes,
        help="stop the recording after M minutes of frames (e.g. 10, 0.5), then end the session",
    )
    p.add_argument(
        "--duration",
        metavar="S",
        type=_positive(float),
        help="stop after S seconds (default: at Ctrl-C or the end of a replay)",
    )
    p.add_argument(
        "--fps",
        type=_positive(float),
        help="synthetic camera frame rate (default 45); for --replay, overrides the file's rate",
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="replay as fast as tracking goes instead of at the recorded rate",
    )
    _add_calibration_option(p)
    _add_pixel_size_option(p, "the Micro-Manager core's pixel-size configuration")
    _add_visit_options(p)
    p.set_defaults(run=run_live)


def run_live(args: argparse.Namespace) -> int:
    """Hand over to the capture loop's command-line front end."""
    from .acquisition.live import run_live as live

    return live(args)


# -- the visit ------------------------------------------------------------------------------------


def _eye(text: str) -> str | None:
    from .visit import check_eye

    try:
        return check_eye(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


_eye.__name__ = "eye"


def _add_pixel_size_option(p: argparse.ArgumentParser, source: str) -> None:
    """``--pixel-size-um``: µm and µm/s beside px in the results."""
    p.add_argument(
        "--pixel-size-um",
        metavar="UM",
        type=_positive(float),
        help=f"size of a camera pixel on the eye, in µm (default: {source}); adds µm and "
        "µm/s beside px in results.json and the report",
    )


def _add_visit_options(p: argparse.ArgumentParser) -> None:
    """``--patient --eye --operator --notes``: the visit, stored only when given."""
    g = p.add_argument_group(
        "visit (optional; stored in the recording, results.json and the report only when given)"
    )
    g.add_argument("--patient", metavar="ID", help="pseudonymous patient ID (never a name)")
    g.add_argument("--eye", type=_eye, metavar="OD|OS", help="OD (right) or OS (left)")
    g.add_argument("--operator", metavar="NAME", help="who took the measurement")
    g.add_argument("--notes", metavar="TEXT", help="free notes on the visit")


def visit_from_args(args: argparse.Namespace) -> Visit:
    """The visit given on the command line (empty when no option was given)."""
    from .visit import Visit

    return Visit(
        patient_id=getattr(args, "patient", None),
        eye=getattr(args, "eye", None),
        operator=getattr(args, "operator", None),
        notes=getattr(args, "notes", None),
    )


# -- calibrate ------------------------------------------------------------------------------------

CALIBRATION_SUFFIX = ".tfllcal.json"


def _add_calibration_option(p: argparse.ArgumentParser) -> None:
    """``--calibration FILE``, shared by the commands that estimate thickness."""
    p.add_argument(
        "--calibration",
        metavar="FILE",
        type=Path,
        help="colour calibration of the camera for lipid thickness (from tfll calibrate)",
    )


def add_calibrate(sub: Any) -> None:
    """``tfll calibrate REFERENCE... --thickness NM...``: a camera's colour calibration file."""
    p = sub.add_parser(
        "calibrate",
        parents=[COMMON],
        help="calibrate a colour camera from reference films",
        description="Fit a colour camera's channel gains and black level from images of "
        "reference films of known thickness (one image per thickness; two or more also fit "
        "the black level), and write the calibration file that tfll analyze and tfll live "
        "take with --calibration. Photograph the references under the light and exposure "
        "used for the eye: that also fixes the film's brightness, which thin layers alone "
        "determine poorly. Example: tfll calibrate film40.tif film120.tif --thickness 40 120",
    )
    p.add_argument(
        "references",
        metavar="REFERENCE",
        nargs="+",
        type=Path,
        help="image of a reference film (TIFF/OME-TIFF: first frame; PNG or what OpenCV reads)",
    )
    p.add_argument(
        "--thickness",
        metavar="NM",
        nargs="+",
        required=True,
        type=_positive(float),
        help="film thickness of each reference in nm, in the same order",
    )
    p.add_argument(
        "--region",
        metavar=("Y0", "Y1", "X0", "X1"),
        nargs=4,
        type=int,
        help="pixels whose median colour is the reference's: rows Y0:Y1, columns X0:X1 "
        "(default: the central half of the image in each direction)",
    )
    p.add_argument(
        "--black",
        metavar=("R", "G", "B"),
        nargs=3,
        type=float,
        help="the camera's black level per channel (default: 0 with one reference, "
        "fitted with two or more)",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        type=Path,
        help=f"calibration file (default: <first REFERENCE stem>{CALIBRATION_SUFFIX} beside it)",
    )
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.set_defaults(run=run_calibrate)


def reference_region(
    shape: tuple[int, ...], region: list[int] | None, name: str | Path
) -> tuple[int, int, int, int]:
    """Rows and columns (y0, y1, x0, x1) of a reference image to take its colour from.

    The default, the central half each way, keeps clear of a chart's frame and of the
    vignetting at the image's corners.
    """
    h, w = shape[:2]
    if region is None:
        return h // 4, h - h // 4, w // 4, w - w // 4
    y0, y1, x0, x1 = region
    if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
        raise ValueError(
            f"{name}: --region {y0} {y1} {x0} {x1} is not inside the {h}x{w} image "
            f"(need 0 <= Y0 < Y1 <= {h} and 0 <= X0 < X1 <= {w})"
        )
    return y0, y1, x0, x1


def reference_pixels(path: Path, region: list[int] | None) -> tuple[np.ndarray, str]:
    """The RGB pixels ``(N, 3)`` of a reference's region, and a note of where they came from.

    Refused (one line, naming the file): mono or grey images, which carry no colour to
    calibrate, and a region whose median reaches the pixel type's maximum in some channel,
    since a clipped channel would give that channel a gain too low.
    """
    import numpy as np

    from .io import read_image

    image = read_image(path)
    if image.ndim != 3:
        raise ValueError(f"{path}: mono image: a colour calibration needs an RGB reference")
    y0, y1, x0, x1 = reference_region(image.shape, region, path)
    pixels = image[y0:y1, x0:x1].reshape(-1, 3)
    if np.issubdtype(pixels.dtype, np.integer):
        top = np.iinfo(pixels.dtype).max
        colour = np.median(pixels, axis=0)
        clipped = [c for c, v in zip("RGB", colour, strict=True) if v >= top]
        if clipped:
            raise ValueError(
                f"{path}: channel {'/'.join(clipped)} saturated (median {top}, the "
                f"{pixels.dtype.itemsize * 8}-bit maximum) in rows {y0}:{y1}, columns "
                f"{x0}:{x1}: lower the exposure or the light"
            )
    if np.all(pixels == pixels[:, :1]):
        raise ValueError(
            f"{path}: grey image (R = G = B everywhere in rows {y0}:{y1}, columns {x0}:{x1}): "
            "a colour calibration needs the camera's raw RGB"
        )
    return pixels, f"{path.name}[{y0}:{y1},{x0}:{x1}]"


def run_calibrate(args: argparse.Namespace) -> int:
    """Fit the calibration from the references and write it; say what was fitted."""
    import numpy as np

    from .io import check_output, stream_stem
    from .thickness import MIN_CHART_SPAN_NM, Calibration

    refs, nm = list(args.references), list(args.thickness)
    if len(nm) != len(refs):
        raise ValueError(
            f"{len(refs)} reference(s) but {len(nm)} thickness(es): --thickness takes one "
            "value per REFERENCE, in the same order"
        )
    if not all(np.isfinite(nm)):
        raise ValueError(f"--thickness must be finite numbers of nm, got {nm}")
    black: tuple[float, float, float] | None = None
    if args.black is not None:
        if not all(np.isfinite(args.black)) or min(args.black) < 0:
            raise ValueError(f"--black must be three finite levels >= 0, got {args.black}")
        black = (float(args.black[0]), float(args.black[1]), float(args.black[2]))
        how = "given"
    elif len(refs) > 1 and np.ptp(nm) >= MIN_CHART_SPAN_NM:
        how = "fitted"
    else:
        black = (0.0, 0.0, 0.0)
        how = "assumed 0: give --black, or references of different thickness"
    out = args.out or refs[0].parent / f"{stream_stem(refs[0])}{CALIBRATION_SUFFIX}"
    check_output(out, args.force, "--out another file")
    if not out.parent.is_dir():
        raise ValueError(f"{out}: directory {out.parent} does not exist")

    pixels, notes = zip(*(reference_pixels(Path(r), args.region) for r in refs), strict=True)
    source = "tfll calibrate: " + ", ".join(
        f"{note} {d:g} nm" for note, d in zip(notes, nm, strict=True)
    )
    colours = np.stack([np.median(p.astype(np.float64), axis=0) for p in pixels])
    if len(refs) == 1:
        cal = Calibration.from_reference(pixels[0], nm[0], black_level=black, source=source)
    else:
        cal = Calibration.fit(colours, np.array(nm), black_level=black, source=source)
    # more references than the fit's unknowns (gain, and the black level if fitted): show
    # how well they agree, which exposes a mistyped thickness or a wrong order
    residual = ""
    if len(refs) > (2 if how == "fitted" else 1):
        rms = float(np.sqrt(np.mean((colours - cal.predict(np.array(nm))) ** 2)))
        residual = f", residual {rms:.2g} counts RMS"
    cal.save(out)
    Calibration.load(out)  # what --calibration will read: fail here, not at the analysis
    gains = " ".join(f"{c} {g:.3f}" for c, g in zip("RGB", cal.gain, strict=True))
    offset = " ".join(f"{o:.1f}" for o in cal.offset)
    print(
        f"wrote {out}: gains {gains}, black level {offset} ({how}), film gain "
        f"{cal.film_gain:.4g}, from {len(refs)} reference(s) of "
        f"{', '.join(f'{d:g}' for d in nm)} nm{residual}"
    )
    return EXIT_OK


# -- report ---------------------------------------------------------------------------------------


def add_report(sub: Any) -> None:
    """``tfll report RESULTS_DIR``: the session report as one self-contained HTML page."""
    p = sub.add_parser(
        "report",
        parents=[COMMON],
        help="write an HTML session or study report, or compare sessions",
        description="Write one self-contained HTML page (plots inline, no "
        "network) from an analysis folder's results.json and frames.csv. With two or more "
        "folders (before/after a treatment): the sessions side by side, by eye, each measure "
        "with its spread over the session's intervals. With a study folder (tfll batch): the "
        "distributions of spread time, tau and thickness over its recordings, per eye, and "
        "the recordings that failed.",
    )
    p.add_argument(
        "results_dirs",
        metavar="RESULTS_DIR",
        nargs="+",
        type=Path,
        help="folder written by tfll analyze (or a recording's analysis), or a study folder "
        "written by tfll batch",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        type=Path,
        help="output file (default: RESULTS_DIR/report.html, or STUDY_DIR/report.html; "
        "comparing: comparison.html here)",
    )
    p.add_argument(
        "--force", action="store_true", help="replace an existing comparison file"
    )
    p.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Build the report and say where it went."""
    from .compare import write_comparison
    from .report import write_report
    from .study import is_study

    start = time.monotonic()
    if len(args.results_dirs) > 1:
        path = write_comparison(args.results_dirs, args.out, force=args.force)
    elif is_study(args.results_dirs[0]):
        from .study_report import write_study_report

        path = write_study_report(args.results_dirs[0], args.out)
    else:
        path = write_report(args.results_dirs[0], args.out)
    print(f"wrote {path} in {time.monotonic() - start:.1f} s")
    return EXIT_OK


# -- the command ----------------------------------------------------------------------------------

SUBCOMMANDS: list[Callable[[Any], None]] = [
    add_analyze,
    add_batch,
    add_synth,
    add_demo,
    add_live,
    add_report,
    add_calibrate,
]
"""Registration functions, one per subcommand, in the order ``tfll --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """Build the ``tfll`` parser with every subcommand registered."""
    parser = _Parser(
        prog="tfll",
        parents=[COMMON],
        description="Real-time tracking of the tear film lipid layer.",
    )
    parser.add_argument(
        "--version", action="version", version=f"tfll {__version__} (tfll-live)"
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``tfll``; returns the exit status (0 ok, 2 bad input or usage, 1 unexpected failure)."""
    from .io import StreamError, one_line

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, usage errors: argparse has printed its message
        return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
    debug = getattr(args, "debug", False)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("tfll: interrupted", file=sys.stderr)
        return 130
    except (StreamError, ValueError, OSError) as e:
        if debug:
            traceback.print_exc()
        print(f"tfll: error: {one_line(e, limit=2000)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:
        if debug:
            traceback.print_exc()
        print(
            f"tfll: error: unexpected {type(e).__name__}: {one_line(e)} (run with --debug "
            "for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
