"""A fresh install runs: no module of ours shadows an installed package, every installed package is the lock's
version, and each way to start works from any folder."""

import importlib.metadata
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
OURS = "helios-studio"


def pins(lock: str) -> dict[str, str]:
    lines = (ROOT / lock).read_text().splitlines()
    return {canonicalize_name(name): version for name, version in
            (m.groups() for m in map(re.compile(r"^([A-Za-z0-9._-]+)==(\S+)").match, lines) if m)}


def top_level_modules_on_sys_path() -> dict[str, Path]:
    """Every name a folder of ours puts on `sys.path` makes importable: the root's (`python app.py`, `python -m`)
    and that of each folder whose scripts run as `python folder/script.py` or that pytest prepends (tests/)."""
    found = {}
    for folder in [ROOT] + [
        p for p in ROOT.iterdir() if p.is_dir() and p.name != "helios" and not p.name.startswith(".")
    ]:
        for path in folder.iterdir():
            if path.suffix == ".py" or (path / "__init__.py").is_file():
                found[path.stem] = path
    return found


def test_no_module_of_ours_has_the_name_of_an_installed_package():
    installed = {name: dists for name, dists in importlib.metadata.packages_distributions().items()
                 if OURS not in dists}
    assert "kernels" in installed, "Hugging Face's kernels (transformers' requirement) is the case this guards"
    clashes = {name: installed[name] for name in top_level_modules_on_sys_path().keys() & installed.keys()}
    assert not clashes, f"these modules of ours shadow installed packages: {clashes}; move them under helios/"


def test_diffusers_and_transformers_import_from_the_project_root():
    """The root is first on `sys.path` when the app starts; diffusers and transformers import Hugging Face's kernels."""
    code = (
        "import kernels; from diffusers import HeliosTransformer3DModel; from transformers import UMT5EncoderModel; "
        "print(kernels.__file__)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert Path(done.stdout.strip()).is_relative_to(Path(importlib.metadata.distribution("kernels").locate_file("")))


def test_every_installed_package_is_the_locks_version():
    """What CI tests is what the lock says; only the local build label (CI's torch `+cpu`) may differ."""
    locked = pins("requirements-test.lock")
    site = {Path(sysconfig.get_path(key)).resolve() for key in ("purelib", "platlib")}
    off = {}
    for dist in importlib.metadata.distributions():
        if Path(dist.locate_file("")).resolve() not in site:
            continue  # e.g. setuptools' own vendored copies, on sys.path once a test imports setuptools
        name = canonicalize_name(dist.metadata["Name"])
        if name in (OURS, "pip"):
            continue
        if Version(dist.version).public != locked.get(name):
            off[name] = (dist.version, locked.get(name))
    assert not off, f"installed (version, locked version): {off}; run scripts/lock.sh"


def test_the_test_lock_keeps_the_apps_pins_and_pip_check_is_clean():
    app, test = pins("requirements.lock"), pins("requirements-test.lock")
    assert {name: test.get(name) for name in app} == app
    assert {"torch", "diffusers", "transformers", "kernels", "gradio", "nvidia-cublas"} <= app.keys()
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert all(app.get(name) == version for name, version in (r.split("==") for r in build)), "the build's own pins"
    done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout


def test_the_installed_command_generates_from_another_folder(tmp_path):
    helios = Path(sys.executable).parent / "helios"
    assert helios.is_file(), "the test install (`pip install -e .`) puts the helios command beside python"
    out = tmp_path / "clip.npy"
    done = subprocess.run([str(helios), "generate", "--model", "tiny", "--prompt", "a fox", "--frames", "33",
                           "--steps", "1,1,1", "--height", "64", "--width", "128", "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.stat().st_size > 33 * 64 * 128 * 3


def test_the_wheel_carries_only_the_helios_package(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.in", "requirements-test.in"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "helios", source / "helios", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "wheel"), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("helios_studio-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"helios"}
    assert "helios/faster/kernels/fp8_attention.py" in names and "helios/studio/page.py" in names
