"""The Python flow in README.md runs as written: train → evaluate → promote → load_model → predict."""

import doctest
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AMPLOOP_HOME", str(tmp_path / "home"))
    for name in list(__import__("os").environ):
        if name.startswith("AMPLOOP_") and name != "AMPLOOP_HOME":
            monkeypatch.delenv(name)
    failures, tried = doctest.testfile(
        str(README),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
    )
    assert tried >= 15, "the README lost its Python examples"
    assert failures == 0
