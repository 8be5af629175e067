"""The main job, `clconv demo`, end to end on a short run."""
import json

import pytest

from clconv.cli import main

pytest.importorskip("sklearn", reason="scikit-learn not installed: pip install 'clconv[demo]'")
pytest.importorskip("matplotlib", reason="matplotlib not installed: pip install 'clconv[demo]'")


def test_demo_trains_saves_reloads_and_draws(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "3", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "device:" in printed and "test accuracy" in printed
    assert "bit-for-bit identical" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"test_accuracy", "epochs", "seconds", "device"} <= set(metrics)
    assert metrics["epochs"] == 3
    assert metrics["test_accuracy"] >= 0.9  # three epochs reach about 0.98
    assert metrics["reloaded_test_accuracy"] == metrics["test_accuracy"]
    assert metrics["reload_bit_identical"] is True
    for name in ("model.npz", "training_curve.png", "filters.png", "feature_maps.png"):
        data = (out / name).read_bytes()
        assert len(data) > 1000, name
    assert (out / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(tmp_path), "--epochs", "0"])
    assert exit_info.value.code == 2
    assert "argument --epochs: expected an integer >= 1, got 0" in capsys.readouterr().err
