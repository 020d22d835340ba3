"""Nothing lost, nothing silently replaced (issue 12): overwrites, interruptions, symlinks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfll_live.analyze import analyze
from tfll_live.cli import main
from tfll_live.io import read_results
from tfll_live.synth import SynthConfig, SyntheticStream, write_stream

H, W, N = 64, 96, 90


def _run(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def stream(tmp_path) -> Path:
    path = tmp_path / "eye.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=H, width=W, n_frames=N, seed=1)), path)
    return path


# -- item 1: nothing replaced without --force; interrupted runs leave the earlier results -------


def test_synth_keeps_an_existing_file_unless_forced(tmp_path, capsys):
    out = tmp_path / "rec.ome.tif"
    out.write_bytes(b"a recording")
    code, _, err = _run(capsys, "synth", out, "--frames", 20, "--height", H, "--width", W)
    _one_line_error(code, err, str(out), "--force")
    assert out.read_bytes() == b"a recording"
    assert not (tmp_path / "rec.truth.json").exists()
    code, _, err = _run(
        capsys, "synth", out, "--frames", 20, "--height", H, "--width", W, "--force"
    )
    assert code == 0, err
    assert out.read_bytes() != b"a recording"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.ome.tif", "rec.truth.json"]


def test_synth_keeps_an_existing_truth_file_unless_forced(tmp_path, capsys):
    truth = tmp_path / "s.truth.json"
    truth.write_text("mine")
    code, _, err = _run(capsys, "synth", tmp_path / "s.ome.tif", "--frames", 20)
    _one_line_error(code, err, str(truth), "--force")
    assert truth.read_text() == "mine" and not (tmp_path / "s.ome.tif").exists()


def test_analyze_keeps_an_earlier_analysis_unless_forced(stream, capsys):
    out = analyze(stream)
    (out / "report.html").write_text("report of the earlier results")
    before = _files(out)
    code, _, err = _run(capsys, "analyze", stream)
    _one_line_error(code, err, str(out), "--force", "--out")
    assert _files(out) == before
    code, _, err = _run(capsys, "analyze", stream, "--force")
    assert code == 0, err
    # replaced whole: the out-of-date report is gone, no temporary is left
    assert sorted(p.name for p in out.iterdir()) == ["frames.csv", "results.json", "tracks.csv"]
    assert read_results(out)["n_frames"] == N


def test_an_interrupted_reanalysis_leaves_the_earlier_results_whole(stream):
    out = analyze(stream)
    before = _files(out)

    def interrupt(done: int, total: int | None) -> None:
        if done == N // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        analyze(stream, force=True, progress=interrupt)
    assert _files(out) == before


def test_an_interrupted_first_analysis_leaves_no_partial_results(stream):
    def interrupt(done: int, total: int | None) -> None:
        if done == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        analyze(stream, progress=interrupt)
    assert list((stream.parent / "eye.tfll").iterdir()) == []


# -- item 3: SIGTERM and SIGHUP finish `tfll live` as Ctrl-C does (end to end in
# test_acquisition_cli.py); the handlers are the live session's only


def test_stop_signals_raise_keyboard_interrupt_inside_and_are_restored_after():
    import os
    import signal
    import time

    from tfll_live.acquisition.live import stop_signals

    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    caught: list[str] = []
    with pytest.raises(KeyboardInterrupt), stop_signals(caught):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # not reached: the handler raises as soon as os.kill returns
    assert caught == ["SIGTERM"]
    assert {s: signal.getsignal(s) for s in before} == before
