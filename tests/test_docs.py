"""The repository's own documentation of the output format keeps up with what is written."""

from __future__ import annotations

import re
from pathlib import Path

from tfll_live.cli import main
from tfll_live.io import read_results
from tfll_live.synth import SynthConfig, SyntheticStream, write_stream

ROOT = Path(__file__).resolve().parents[1]


def _documented() -> set[str]:
    """Names the document gives: in code, in the JSON example, in the tables' first column."""
    text = (ROOT / "docs" / "output.md").read_text()
    names = set(re.findall(r"`([a-z_0-9]+)`", text)) | set(re.findall(r'"([a-z_0-9]+)":', text))
    for cell in re.findall(r"^\| ([a-z_0-9, ]+) \|", text, flags=re.M):
        names |= {n.strip() for n in cell.split(",")}
    return names


def test_every_field_results_json_and_the_csvs_hold_is_in_docs_output_md(tmp_path):
    path = tmp_path / "s.ome.tif"
    write_stream(SyntheticStream(SynthConfig(height=120, width=160, n_frames=200)), path)
    assert main(["analyze", str(path), "--out", str(tmp_path / "a"), "--eye", "OS"]) == 0
    doc = read_results(tmp_path / "a")
    names = set(doc) | set(doc["visit"]) | set(doc["blink_stats"]) | set(doc["thickness"])
    for iv in doc["intervals"]:
        names |= set(iv) | set(iv["spread"] or {}) | set(iv["thickness"] or {})
        names |= set(iv["kinetics"] or {})
    for name in ("frames.csv", "tracks.csv"):
        header = (tmp_path / "a" / name).read_text().splitlines()[0]
        names |= set(header.split(","))
    missing = sorted(names - _documented())
    assert not missing, f"docs/output.md does not document {missing}"


def test_readme_points_to_the_output_format_in_the_repository_and_installs_in_a_venv():
    readme = (ROOT / "README.md").read_text()
    assert "(docs/output.md)" in readme and "../shared" not in readme
    install = readme[: readme.index("tfll demo")]
    assert install.index("python3 -m venv .venv") < install.index("pip install")
    assert "python3-venv" in install and "libxcb-cursor0" in install
