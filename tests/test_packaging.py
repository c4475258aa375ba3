"""Packaging: every package is listed in setup.cfg and the kernels ship as package data."""
import configparser
import importlib.resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_setup_cfg_lists_every_package():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    on_disk = {".".join(p.parent.relative_to(ROOT).parts)
               for p in (ROOT / "minidl").rglob("__init__.py")}
    assert on_disk - listed == set(), f"add these to setup.cfg [options] packages: " \
                                      f"{sorted(on_disk - listed)}"
    assert "minidl.kernels" in listed


def test_kernel_sources_are_installed_with_the_package():
    files = importlib.resources.files("minidl.kernels")
    sources = [f for f in files.iterdir() if f.name.endswith(".cu")]
    assert sources, "no .cu file found through importlib.resources('minidl.kernels')"
    assert "__global__" in sources[0].read_text()
