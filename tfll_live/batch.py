"""A study's recordings analysed in parallel on Dask, each exactly as ``tfll analyze`` does.

``tfll batch INPUTS... --out STUDY_DIR`` finds the recordings among files, folders and globs,
names each one's folder in the study, and sends every recording that is not already analysed
to Dask: a local cluster of worker processes by default, or an existing ``dask.distributed``
scheduler. A worker runs ``analyze.analyze`` itself on one recording at a time (the frames
streamed from disk, one at a time), so a study's results are those of ``tfll analyze``.

Each recording's folder holds ``tfll-batch.json``, its fingerprint (the input's path, size and
modification time, the analysis settings, the tfll version) with the outcome. A later run skips
a recording whose analysis is complete and has the same fingerprint; one whose fingerprint
changed is redone only with ``force`` (nothing is replaced unasked). ``batch.json`` in the study
folder records the last run; ``study.py`` builds the study's tables from these files.
"""

from __future__ import annotations

import glob
import json
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .io import (
    ANALYSIS_FILES,
    StreamError,
    check_output,
    one_line,
    stream_stem,
    write_text_replacing,
)
from .tracking import TrackerConfig

MANIFEST = "tfll-batch.json"
"""In each recording's folder: what was analysed (the fingerprint) and how it ended."""
MANIFEST_SCHEMA = "tfll-batch/1"
RUN_RECORD = "batch.json"
"""In the study folder: the last run, one entry per recording of its inputs."""
RUN_SCHEMA = "tfll-batch-run/1"

STREAM_SUFFIXES = (".tif", ".tiff", ".mp4", ".avi", ".mov", ".mkv", ".m4v")
"""Files a folder is searched for (a file named on the command line is taken whatever it is)."""

COMPLETE, FAILED, SKIPPED = "complete", "failed", "skipped"


class BatchUnavailable(ValueError):
    """``tfll batch`` needs the ``batch`` extra (Dask, pyarrow, tqdm)."""


# -- finding the recordings -----------------------------------------------------------------------


def _is_zarr_store(path: Path) -> bool:
    return path.is_dir() and any((path / n).is_file() for n in ("zarr.json", ".zgroup", ".zarray"))


def _search(folder: Path, skip: Path | None) -> Iterable[Path]:
    """Recordings in ``folder`` and below: stream files and Zarr stores (not entered).

    Hidden names, analysis folders (``*.tfll``) and the study folder itself are passed over.
    """
    try:
        entries = sorted(folder.iterdir())
    except OSError as e:
        raise StreamError(f"{folder}: cannot list the folder ({e.strerror or e})") from e
    for p in entries:
        if p.name.startswith(".") or p.name.endswith(".tfll"):
            continue
        if p.is_dir():
            if skip is not None and p.resolve() == skip:
                continue
            if _is_zarr_store(p):
                yield p
            elif not p.is_symlink():  # a link to a folder could loop; name its target instead
                yield from _search(p, skip)
        elif p.name.lower().endswith(STREAM_SUFFIXES):
            yield p


def find_recordings(inputs: Sequence[str | Path], study_dir: Path | None = None) -> list[Path]:
    """The recordings the inputs name: files, folders (searched) and globs, in a stable order.

    A folder that is a Zarr store is one recording; any other folder is searched. An input that
    names nothing (no such path, a glob without matches) is refused in one line, before any
    work: with thousands of recordings a typo must not pass unnoticed.
    """
    skip = study_dir.resolve() if study_dir is not None else None
    found: dict[Path, Path] = {}
    missing: list[str] = []
    for text in map(str, inputs):
        p = Path(text).expanduser()
        if p.exists():
            named = [p]
        elif any(c in text for c in "*?["):
            named = [Path(m) for m in sorted(glob.glob(str(p), recursive=True))]
        else:
            named = []
        if not named:
            missing.append(text)
        for q in named:
            if q.is_dir() and not _is_zarr_store(q):
                for r in _search(q, skip):
                    found.setdefault(r.resolve(), r)
            else:
                found.setdefault(q.resolve(), q)
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        shown = ", ".join(missing[:5]) + more
        raise ValueError(f"no such file, folder or glob match: {shown}")
    return sorted(found)


def recording_names(paths: Sequence[Path]) -> dict[Path, str]:
    """Each recording's folder name in the study: its stem, with parent folders when stems clash.

    Clinics name files alike in every visit folder (``2026-03-01_093005_OD/take.ome.zarr``), so
    a clash takes as many parent folder names as it needs (``2026-03-01_093005_OD__take``).
    """
    depth = dict.fromkeys(paths, 0)

    def name(p: Path) -> str:
        parents = p.parent.parts[1:]  # not the root
        d = min(depth[p], len(parents))
        return "__".join([*parents[len(parents) - d :], stream_stem(p)])

    while True:
        by_name: dict[str, list[Path]] = defaultdict(list)
        for p in paths:
            by_name[name(p)].append(p)
        clashes = [ps for ps in by_name.values() if len(ps) > 1]
        grown = False
        for ps in clashes:
            for p in ps:
                if depth[p] < len(p.parent.parts) - 1:
                    depth[p] += 1
                    grown = True
        if not grown:
            break
    names: dict[Path, str] = {}
    for n, ps in by_name.items():  # identical paths up to the root: cannot happen, but be total
        for k, p in enumerate(ps):
            names[p] = n if len(ps) == 1 else f"{n}__{k + 1}"
    return names


# -- what a run does ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalysisOptions:
    """What every recording of a run is analysed with: ``tfll analyze``'s options."""

    fps: float | None = None
    config: TrackerConfig = field(default_factory=TrackerConfig)
    pixel_size_um: float | None = None
    reports: bool = True  # also write each recording's report.html (``tfll report``)

    def settings(self) -> dict[str, Any]:
        """The settings a fingerprint holds: anything that changes the results."""
        calibration = self.config.thickness_calibration
        return {
            "tracker": self.config.to_json(),
            "fps": self.fps,
            "pixel_size_um": self.pixel_size_um,
            "calibration_file": _stamp(Path(calibration)) if calibration else None,
        }


def _stamp(path: Path) -> dict[str, int]:
    """Size and modification time of a file, or of all the files of a folder (a Zarr store).

    Cheap enough for thousands of recordings; a file rewritten in place changes its mtime.
    """
    st = path.stat()
    if not path.is_dir():
        return {"size_bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    size, mtime, n = 0, st.st_mtime_ns, 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            s = os.stat(os.path.join(dirpath, f))
            size, mtime, n = size + s.st_size, max(mtime, s.st_mtime_ns), n + 1
    return {"size_bytes": size, "mtime_ns": mtime, "files": n}


def fingerprint(path: Path, options: AnalysisOptions) -> dict[str, Any]:
    """What makes an analysis current: the same input file, settings and tfll version."""
    return {
        "input": str(path.resolve()),
        **_stamp(path),
        "settings": options.settings(),
        "tfll_version": __version__,
    }


def _changed(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Say in a few words how an earlier analysis' fingerprint differs from this run's."""
    what = []
    if old.get("input") != new["input"]:
        what.append(f"of another input ({old.get('input')})")
    elif any(old.get(k) != new.get(k) for k in ("size_bytes", "mtime_ns", "files")):
        what.append("of an earlier version of the input file")
    if old.get("settings") != new["settings"]:
        what.append("with other settings")
    if old.get("tfll_version") != new["tfll_version"]:
        what.append(f"by tfll {old.get('tfll_version')}")
    return ", ".join(what) or "not known to be current"


@dataclass(frozen=True)
class Job:
    """One recording to analyse: where from, where to, and whether an analysis there may go."""

    name: str
    input: Path
    out_dir: Path
    fingerprint: dict[str, Any]
    replace: bool
    size_bytes: int


@dataclass(frozen=True)
class Outcome:
    """How one recording's analysis ended (``reason`` is one line when it failed)."""

    name: str
    input: str
    status: str  # COMPLETE (analysed now), SKIPPED (complete and current), FAILED
    reason: str | None = None
    analysis_s: float | None = None
    analysis_cpu_s: float | None = None  # the worker's CPU time: less on a busy machine
    worker_peak_rss_mb: float | None = None


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """A recording folder's ``tfll-batch.json``, or None when absent or not one."""
    try:
        doc = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == MANIFEST_SCHEMA else None


def write_manifest(out_dir: Path, job: Job, status: str, reason: str | None) -> None:
    """Record what was analysed and how it ended (written whole or not at all, never via links)."""
    path = check_output(out_dir / MANIFEST, force=True)
    doc = {
        "schema": MANIFEST_SCHEMA,
        "recording": job.name,
        "status": status,
        "reason": reason,
        "fingerprint": job.fingerprint,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_text_replacing(path, json.dumps(doc, indent=2) + "\n")


def plan(
    paths: Sequence[Path], study_dir: Path, options: AnalysisOptions, force: bool
) -> tuple[list[Job], list[Outcome]]:
    """Split the recordings into work to do and outcomes known now (skipped, or refused).

    Skipped: complete and current. Refused without ``force``: a folder holding an analysis that
    is not current, or that tfll batch did not write. An earlier run's own unfinished or failed
    analysis of the same input and settings is redone without asking.
    """
    jobs: list[Job] = []
    known: list[Outcome] = []
    for path, name in recording_names(paths).items():
        out_dir = study_dir / name
        try:
            fp = fingerprint(path, options)
        except OSError as e:
            known.append(Outcome(name, str(path), FAILED, f"{path}: cannot read ({e.strerror})"))
            continue
        if out_dir.is_symlink():
            reason = f"{out_dir}: is a symbolic link; tfll never writes through one (remove it)"
            known.append(Outcome(name, str(path), FAILED, reason))
            continue
        manifest = read_manifest(out_dir)
        has_results = any((out_dir / n).exists() for n in ANALYSIS_FILES)
        same = manifest is not None and manifest.get("fingerprint") == fp
        if (
            same
            and not force
            and manifest is not None
            and manifest.get("status") == COMPLETE
            and (out_dir / "results.json").is_file()
        ):
            known.append(Outcome(name, str(path), SKIPPED))
            continue
        if has_results and not (force or same):
            why = (
                f"holds an analysis {_changed(manifest['fingerprint'], fp)}"
                if manifest is not None and isinstance(manifest.get("fingerprint"), dict)
                else "holds an analysis tfll batch did not write"
            )
            known.append(
                Outcome(name, str(path), FAILED, f"{out_dir} {why}: pass --force to redo it")
            )
            continue
        jobs.append(Job(name, path, out_dir, fp, force or same, int(fp["size_bytes"])))
    return jobs, known


def _peak_rss_mb() -> float:
    """The peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def analyse_one(job: Job, options: AnalysisOptions) -> Outcome:
    """Analyse one recording on a worker, as ``tfll analyze`` does; never raises.

    OpenCV gets one thread: the cluster's parallelism is across recordings, and every worker's
    own thread pool would only fight the others for the cores.
    """
    import cv2

    from .analyze import analyze

    cv2.setNumThreads(1)
    start, cpu = time.monotonic(), time.process_time()
    status, reason = COMPLETE, None
    try:
        check_output(job.out_dir, force=True)  # a link is refused before anything is made
        job.out_dir.mkdir(parents=True, exist_ok=True)
        if job.replace:  # a crash below must not leave "complete" beside changed files
            check_output(job.out_dir / MANIFEST, force=True).unlink(missing_ok=True)
        analyze(
            job.input,
            out=job.out_dir,
            fps=options.fps,
            config=options.config,
            force=job.replace,
            pixel_size_um=options.pixel_size_um,
        )
        if options.reports:
            from .report import write_report

            write_report(job.out_dir)
    except (StreamError, ValueError, OSError) as e:
        status, reason = FAILED, one_line(e, limit=500)
    except Exception as e:  # a bug must cost one recording, not the study
        status, reason = FAILED, f"unexpected {type(e).__name__}: {one_line(e)}"
    if job.out_dir.is_dir() and not job.out_dir.is_symlink():
        try:
            write_manifest(job.out_dir, job, status, reason)
        except (OSError, ValueError) as e:
            status, reason = FAILED, reason or f"cannot record the outcome: {one_line(e)}"
    return Outcome(
        job.name,
        str(job.input),
        status,
        reason,
        analysis_s=time.monotonic() - start,
        analysis_cpu_s=time.process_time() - cpu,
        worker_peak_rss_mb=_peak_rss_mb(),
    )


# -- running on Dask ------------------------------------------------------------------------------


def _dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise BatchUnavailable(
            "tfll batch needs Dask: python -m pip install 'tfll-live[batch]'"
        ) from None
    return distributed


def _worker_lost(job: Job, error: BaseException) -> Outcome:
    """The outcome of a task Dask could not finish (its worker died, say of memory)."""
    reason = f"worker lost ({type(error).__name__}: {one_line(error)})"
    try:
        if job.out_dir.is_dir() and not job.out_dir.is_symlink():
            write_manifest(job.out_dir, job, FAILED, reason)
    except (OSError, ValueError):
        pass
    return Outcome(job.name, str(job.input), FAILED, reason)


@dataclass
class RunResult:
    """What a run did: every recording's outcome, and the wall time of the analyses."""

    outcomes: list[Outcome]
    wall_s: float = 0.0
    dashboard: str | None = None

    def count(self, status: str) -> int:
        """How many recordings ended with ``status``."""
        return sum(o.status == status for o in self.outcomes)


def run_jobs(
    jobs: Sequence[Job],
    options: AnalysisOptions,
    client: Any,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Submit the jobs to a Dask client, largest first, and collect their outcomes as they end.

    Largest first: the long recordings start early, and the short ones fill the gaps at the
    end, so no worker waits on one long recording at the finish.
    """
    distributed = _dask()
    order = sorted(jobs, key=lambda j: -j.size_bytes)
    futures = {
        client.submit(
            analyse_one,
            job,
            options,
            key=f"tfll-{job.name}-{time.time_ns()}",
            pure=False,
            priority=len(order) - k,
        ): job
        for k, job in enumerate(order)
    }
    outcomes = []
    for fut in distributed.as_completed(futures):
        try:
            outcome = fut.result()
        except Exception as e:
            outcome = _worker_lost(futures[fut], e)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes


def local_cluster(workers: int | None) -> Any:
    """A local cluster of worker processes, one thread each, with its dashboard on a free port.

    Processes, not threads: the tracker is Python that holds the GIL. One thread a worker: a
    worker holds one recording's frames at a time, so memory is bounded by the worker count.
    """
    import importlib.util

    distributed = _dask()
    dashboard = ":0" if importlib.util.find_spec("bokeh") is not None else None
    return distributed.LocalCluster(
        n_workers=workers or os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=dashboard,
    )


def run_batch(
    inputs: Sequence[str | Path],
    study_dir: str | Path,
    options: AnalysisOptions | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    on_start: Callable[[int, int, int, str | None], None] | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> RunResult:
    """Analyse every recording the inputs name into ``study_dir``; write the study's tables.

    ``scheduler`` is the address of a running ``dask.distributed`` scheduler (its workers must
    see the same paths); without it a local cluster of ``workers`` processes (default: one per
    core) is started and stopped. ``on_start(n_to_analyse, n_skipped, n_refused, dashboard)`` is
    called once the work is known (and the cluster up), ``on_outcome`` as each recording ends
    (the refused ones last: they need no worker).
    """
    from .study import write_tables

    options = options or AnalysisOptions()
    study = check_output(Path(study_dir), force=True)
    if study.exists() and not study.is_dir():
        raise ValueError(f"{study}: exists and is not a folder: pass --out another folder")
    paths = find_recordings(inputs, study)
    if not paths:
        raise ValueError(
            f"no recordings in {', '.join(map(str, inputs))} (looked for "
            f"{', '.join(STREAM_SUFFIXES)} files and Zarr stores)"
        )
    study.mkdir(parents=True, exist_ok=True)
    jobs, known = plan(paths, study, options, force)
    result = RunResult(list(known))
    n_skipped = sum(o.status == SKIPPED for o in known)
    counts = (len(jobs), n_skipped, len(known) - n_skipped)
    start = time.monotonic()
    if not jobs:
        if on_start is not None:
            on_start(*counts, None)
    elif scheduler is not None:
        distributed = _dask()
        try:
            client = distributed.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise ValueError(
                f"cannot reach the Dask scheduler at {scheduler} ({one_line(e)})"
            ) from e
        with client:
            result.dashboard = _dashboard(client)
            if on_start is not None:
                on_start(*counts, result.dashboard)
            result.outcomes += run_jobs(jobs, options, client, on_outcome)
    else:
        distributed = _dask()
        with local_cluster(workers) as cluster, distributed.Client(cluster) as client:
            result.dashboard = _dashboard(client)
            if on_start is not None:
                on_start(*counts, result.dashboard)
            result.outcomes += run_jobs(jobs, options, client, on_outcome)
    result.wall_s = time.monotonic() - start
    for o in known:
        if o.status == FAILED and on_outcome is not None:
            on_outcome(o)
    order = {name: k for k, name in enumerate(recording_names(paths).values())}
    result.outcomes.sort(key=lambda o: order.get(o.name, len(order)))
    write_run_record(study, inputs, result)
    write_tables(study)
    return result


def _dashboard(client: Any) -> str | None:
    """The dashboard's address when the scheduler runs one (bokeh installed there)."""
    try:
        return str(client.dashboard_link) if client.dashboard_link else None
    except (KeyError, AttributeError):
        return None


def write_run_record(study: Path, inputs: Sequence[str | Path], result: RunResult) -> Path:
    """``batch.json``: the last run's recordings and outcomes (the report lists its failures)."""
    doc = {
        "schema": RUN_SCHEMA,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tfll_version": __version__,
        "inputs": [str(i) for i in inputs],
        "wall_s": round(result.wall_s, 3),
        "recordings": [asdict(o) for o in result.outcomes],
    }
    path = check_output(study / RUN_RECORD, force=True)
    return write_text_replacing(path, json.dumps(doc, indent=2) + "\n")


def read_run_record(study: Path) -> dict[str, Any] | None:
    """The study's ``batch.json``, or None when absent or not one."""
    try:
        doc = json.loads((study / RUN_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == RUN_SCHEMA else None
