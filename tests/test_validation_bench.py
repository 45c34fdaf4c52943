"""bench/validation.py: each config is read from the defaults, side by side with the first."""

from pathlib import Path

import pytest


def test_each_config_starts_from_the_defaults_and_counts_changed_readings(mnist_path, monkeypatch):
    monkeypatch.setenv("DIGITREAD_DATA", str(mnist_path))
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "bench"))
    import validation

    from digitread.inference import segment
    from digitread.inference.sequence import resolve_sequence_dir

    default = segment.RAISED_TAIL_HEIGHT
    try:
        shipped = str(resolve_sequence_dir(None))
        configs = ["segment.RAISED_TAIL_HEIGHT=0", "", f"sequence={shipped}", "segment.RAISED_TAIL_HEIGHT=0"]
        rows = validation.main(["--scale", "0.01", *[arg for c in configs for arg in ("--config", c)]])
        assert segment.RAISED_TAIL_HEIGHT == 0  # the last config's setting holds until the next apply
        assert [row["config"] for row in rows] == configs
        for name in ("photos", "strips", "underlined", "pale"):
            assert 0.0 <= rows[0][name] <= 1.0 and name + "_changed" not in rows[0]
            # The shipped model named by its folder reads as the default does; the first config, read
            # again after others, reads as it did the first time: nothing leaks from one to the next.
            assert rows[2][name] == rows[1][name] and rows[2][name + "_changed"] == rows[1][name + "_changed"]
            assert rows[3][name] == rows[0][name] and rows[3][name + "_changed"] == 0
        only = validation.main(["--scale", "0.01", "--only", "singles", "--only", "pale"])
        assert set(only[0]) == {"config", "singles", "pale"}
        # model=DIR and sequence=DIR name the models a config reads with; the shipped ones otherwise.
        assert validation.apply("sequence=runs/other,segment.RAISED_TAIL_HEIGHT=0") == (None, "runs/other")
        assert segment.RAISED_TAIL_HEIGHT == 0
        assert validation.apply("model=runs/digits") == ("runs/digits", None)
        assert default == segment.RAISED_TAIL_HEIGHT and validation.apply("") == (None, None)
        with pytest.raises(SystemExit, match="has no"):
            validation.apply("segment.NO_SUCH_CONSTANT=1")
    finally:
        validation.apply("")
    assert default == segment.RAISED_TAIL_HEIGHT


def test_settings_are_timed_in_turn_and_set_back(mnist_path, monkeypatch):
    monkeypatch.setenv("DIGITREAD_DATA", str(mnist_path))
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "bench"))
    import speed_configs

    from digitread.inference import preprocess

    configs = ["", "preprocess.COMB_EXTEND=0"]
    argv = [a for c in configs for a in ("--config", c)] + ["--rounds", "2", "--repeats", "1", "--combs", "2"]
    rows = speed_configs.main(argv)
    assert [(r["round"], r["config"]) for r in rows] == [(0, ""), (0, configs[1]), (1, ""), (1, configs[1])]
    assert all(r["photo_ms"] > 0 and r["comb_field_ms"] > 0 and r["grain_ms"] > 0 for r in rows)
    assert preprocess.COMB_EXTEND == 1  # every setting back to its default after the last config
