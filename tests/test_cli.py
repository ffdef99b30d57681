"""The console script answers in the user's language."""

from __future__ import annotations

from typer.testing import CliRunner

from dali_multicrop.cli import app

runner = CliRunner()


def test_crops_shows_the_recipe():
    result = runner.invoke(app, ["crops", "2x224,6x96"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("global: 2x224  scale=(0.4, 1.0)")
    assert lines[1].startswith("local: 6x96  scale=(0.05, 0.4)")


def test_bad_spec_is_one_line_without_traceback():
    result = runner.invoke(app, ["crops", "2x"])
    assert result.exit_code == 2
    assert "crop spec '2x' is missing a size" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_version():
    result = runner.invoke(app, ["--version"])
    # the version the package was built and installed with (pyproject.toml takes it from dali_multicrop.__version__)
    from importlib.metadata import version

    assert result.exit_code == 0 and result.output.strip() == version("dali-multicrop")
