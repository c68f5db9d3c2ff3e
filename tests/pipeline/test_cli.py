"""The CLI's contract with people: help for every command, one-line errors, no tracebacks."""


import pytest

from components.common.ports import free_port
from pipeline.cli import build_parser, main


@pytest.mark.parametrize("command", ["run", "compile", "predict", "down", "submit"])
def test_every_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: boston-pipeline" in capsys.readouterr().out


def test_run_help_explains_each_option():
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # noqa: SLF001 - argparse has no public API
    undocumented = [a.dest for a in run._actions if a.dest != "help" and not a.help]  # noqa: SLF001
    assert not undocumented


def test_predict_against_nothing_is_one_line(capsys):
    code = main(["predict", "--url", f"http://127.0.0.1:{free_port()}", *["1"] * 13])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "is the predictor running?" in err[0]


def test_predict_without_values_says_what_to_give(capsys):
    assert main(["predict", "--url", "http://127.0.0.1:9"]) == 2
    assert capsys.readouterr().err.strip() == (
        "boston-pipeline predict: error: give one row of feature values, or --csv FILE"
    )


def test_run_refuses_a_missing_file_before_starting_anything(capsys, tmp_path):
    assert main(["run", "--source", str(tmp_path / "missing.csv")]) == 2
    assert "input file not found" in capsys.readouterr().err
