"""napari finds the plugin's manifest in a wheel install and in an editable install.

The manifest lives at the repository root (napari.yaml); npe2 looks for it inside the
``napari_plugin`` package (entry point ``napari_plugin:napari.yaml``), where a symlink points
to it. The wheel must carry the real file, the editable install must resolve the symlink.
Each install goes into its own virtual environment, which sees the packages of the environment
running the tests (napari, npe2 and the Qt binding they import), and npe2 in that environment
reads and validates the manifest.
"""

import importlib.util
import json
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "napari.yaml"

# build offline with the installed backend when it is there, else pip fetches it (isolation)
_LOCAL_BACKEND = all(importlib.util.find_spec(m) for m in ("hatchling", "editables"))
_ISOLATION = ["--no-build-isolation"] if _LOCAL_BACKEND else []

CHECK = """
import json, napari_plugin
from npe2 import PluginManifest
m = PluginManifest.from_distribution("tfll-live")
c = m.contributions
print(json.dumps({"name": m.name, "package": napari_plugin.__file__,
                  "widgets": [w.display_name for w in c.widgets],
                  "readers": [r.command for r in c.readers],
                  "samples": [s.display_name for s in c.sample_data]}))
"""


def _pip(*args, cwd):
    p = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                       capture_output=True, text=True, cwd=cwd, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]


def _venv(path: Path) -> Path:
    """A virtual environment that also sees this interpreter's packages, after its own.

    Not ``system_site_packages``: from inside a virtual environment that would be the base
    interpreter's packages (whatever Qt binding, if any, is installed there), not ours.
    """
    venv.EnvBuilder(with_pip=False).create(path)
    python = path / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    ours = [*site.getsitepackages(), *([site.getusersitepackages()] if site.ENABLE_USER_SITE
                                       else [])]
    (Path(own) / "_outer_env.pth").write_text("".join(f"{p}\n" for p in ours))
    return python


def _check(python: Path, cwd: Path) -> dict:
    p = subprocess.run([str(python), "-c", CHECK], capture_output=True, text=True, cwd=cwd,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    found = json.loads(p.stdout.strip().splitlines()[-1])
    v = subprocess.run([str(python), "-m", "npe2", "validate", "tfll-live", "--imports"],
                       capture_output=True, text=True, cwd=cwd, timeout=120)
    assert v.returncode == 0 and "valid" in v.stdout, v.stdout + v.stderr
    return found


def _expected() -> dict:
    m = yaml.safe_load(MANIFEST.read_text())
    return {"name": m["name"],
            "widgets": [w["display_name"] for w in m["contributions"]["widgets"]],
            "samples": [s["display_name"] for s in m["contributions"]["sample_data"]]}


def test_manifest_is_reachable_from_the_package_in_the_source_tree():
    link = ROOT / "napari_plugin" / "napari.yaml"
    assert link.resolve() == MANIFEST.resolve()
    assert link.read_bytes() == MANIFEST.read_bytes()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _pip("wheel", "--no-deps", *_ISOLATION, "-w", str(out), str(ROOT), cwd=out)
    [whl] = out.glob("tfll_live-*.whl")
    return whl


def test_wheel_carries_the_real_manifest_and_the_entry_point(wheel):
    with zipfile.ZipFile(wheel) as z:
        assert z.read("napari_plugin/napari.yaml") == MANIFEST.read_bytes()
        [ep] = [n for n in z.namelist() if n.endswith("entry_points.txt")]
        entry_points = z.read(ep).decode()
    assert "[napari.manifest]" in entry_points
    assert "tfll-live = napari_plugin:napari.yaml" in entry_points


def test_napari_finds_the_plugin_in_a_wheel_install(wheel, tmp_path):
    python = _venv(tmp_path / "venv")
    _pip("--python", str(python), "install", "--no-deps", str(wheel), cwd=tmp_path)
    found = _check(python, cwd=tmp_path)
    assert Path(found["package"]).is_relative_to(tmp_path / "venv")  # not the source tree
    assert {k: found[k] for k in ("name", "widgets", "samples")} == _expected()
    assert found["readers"] == ["tfll-live.get_reader"]


def test_napari_finds_the_plugin_in_an_editable_install(tmp_path):
    python = _venv(tmp_path / "venv")
    _pip("--python", str(python), "install", "--no-deps", *_ISOLATION, "-e", str(ROOT),
         cwd=tmp_path)
    found = _check(python, cwd=tmp_path)
    assert Path(found["package"]).resolve().is_relative_to(ROOT)  # the source tree itself
    assert {k: found[k] for k in ("name", "widgets", "samples")} == _expected()
