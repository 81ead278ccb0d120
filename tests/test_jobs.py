"""The jobs in ``scans/``: arguments checked before any compute (exit 2, nothing written), and refused inputs
reported on one line (exit 2, no traceback)."""

import subprocess
import sys
from pathlib import Path

import pytest

SCANS = Path(__file__).resolve().parents[1] / "scans"


@pytest.mark.parametrize("args, message", [
    (["--only", "no-such-study"], "invalid choice: 'no-such-study'"),
    (["--years", "nan"], "--years must be a positive number of SNS years"),
])
def test_main_job_refuses_bad_arguments_before_any_compute(args, message, tmp_path):
    out, results = tmp_path / "figures", tmp_path / "results"
    run = subprocess.run([sys.executable, str(SCANS / "snowmass.py"), *args, "--out", str(out), "--results", str(results)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr
    assert not out.exists() and not results.exists()  # nothing written


def test_a_refused_input_is_one_line_and_exit_2(capsys, monkeypatch):
    """``run_job``: a :class:`CevnsInputError` (e.g. a results folder computed for other inputs) becomes
    ``<job>: error: <message>`` on one line of stderr and status 2; other exceptions propagate."""
    monkeypatch.syspath_prepend(str(SCANS))
    monkeypatch.setattr(sys, "argv", ["snowmass.py"])
    from job import run_job

    from cevns_jax.errors import CevnsInputError

    def refused():
        raise CevnsInputError("results/x: holds a scan computed for other inputs;\n  remove the folder")

    with pytest.raises(SystemExit) as stop:
        run_job(refused)
    assert stop.value.code == 2
    assert capsys.readouterr().err == "snowmass.py: error: results/x: holds a scan computed for other inputs; remove the folder\n"
    with pytest.raises(ZeroDivisionError):
        run_job(lambda: 1 / 0)


def test_figure_record_keeps_only_figures_that_would_come_out_identical(tmp_path, monkeypatch):
    """A rerun from finished results skips a figure only when its inputs, the drawing code and both files on
    disk are those recorded when it was drawn; anything else (new inputs, a file edited or deleted, --redraw)
    draws it again."""
    monkeypatch.syspath_prepend(str(SCANS))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from figure_style import FigureRecord, save_figure

    def draw(values):
        fig, ax = plt.subplots()
        ax.plot(values)
        save_figure(fig, tmp_path, "f")

    inputs = {"curve": np.array([1.0, 2.0, 4.0]), "years": 3.0}
    record = FigureRecord(tmp_path / "figures.json", scripts=[SCANS / "snowmass.py"])
    assert not record.current(tmp_path, "f", inputs)  # never drawn
    draw(inputs["curve"])
    record.record(tmp_path, "f", inputs)
    again = FigureRecord(tmp_path / "figures.json", scripts=[SCANS / "snowmass.py"])  # a new process reads the record
    assert again.current(tmp_path, "f", inputs) and again.skipped == 1
    assert not again.current(tmp_path, "f", {**inputs, "curve": np.array([1.0, 2.0, 4.5])})  # other inputs
    assert not again.current(tmp_path, "f", {**inputs, "years": 5.0})
    assert not FigureRecord(tmp_path / "figures.json", scripts=[SCANS / "snowmass.py"], force=True).current(tmp_path, "f", inputs)
    assert not FigureRecord(tmp_path / "figures.json").current(tmp_path, "f", inputs)  # other drawing code
    (tmp_path / "f.pdf").write_bytes((tmp_path / "f.pdf").read_bytes() + b"%")  # a file edited by hand
    assert not again.current(tmp_path, "f", inputs)
    (tmp_path / "figures.json").write_text("{not json")  # an unreadable record: everything is drawn
    assert not FigureRecord(tmp_path / "figures.json", scripts=[SCANS / "snowmass.py"]).current(tmp_path, "f", inputs)
    # two processes sharing the record (the main job's lanes) each add their figure: both entries survive
    first, second = (FigureRecord(tmp_path / "shared.json", scripts=[SCANS / "snowmass.py"]) for _ in range(2))
    first.record(tmp_path, "f", inputs)
    second.record(tmp_path, "g", inputs)  # second read the record before first wrote its entry
    merged = FigureRecord(tmp_path / "shared.json", scripts=[SCANS / "snowmass.py"])
    assert set(merged.table) == {f"{tmp_path}/f", f"{tmp_path}/g"}
