"""The condensed run log: step status and the steps' own lines on the terminal, everything in the file."""

import io

from pipeline.progress import CondensedLog

KFP_LOCAL_OUTPUT = """\
11:41:04.860 - INFO - Executing task \x1b[96m'load-data'\x1b[0m
11:41:04.860 - INFO - Streamed logs:

    [KFP Executor 2026-11-25 11:41:04,909 INFO]: Got executor_input:
    {
        "inputs": {
            "parameterValues": {"source": "bundled"}
        }
    }
    I0000 00:00:1795606908.453763    8027 port.cc:153] oneDNN custom operations are on.
    loaded 506 rows x 14 columns from bundled
    [KFP Executor 2026-11-25 11:41:05,360 INFO]: Wrote executor output file

11:41:05.434 - INFO - Task \x1b[96m'load-data'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m
11:41:05.435 - INFO - Task \x1b[96m'load-data'\x1b[0m outputs:
    dataset: Dataset( name='dataset', uri='/tmp/x' )
--------------------------------------------------------------------------------
11:41:26.327 - INFO - Pipeline \x1b[95m'boston-housing'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m
"""


def test_terminal_gets_status_and_step_lines_file_gets_everything():
    terminal, full = io.StringIO(), io.StringIO()
    stream = CondensedLog(terminal, full)
    for chunk in (KFP_LOCAL_OUTPUT[:100], KFP_LOCAL_OUTPUT[100:]):  # lines may arrive split across writes
        stream.write(chunk)
    assert full.getvalue() == KFP_LOCAL_OUTPUT
    assert terminal.getvalue().splitlines() == [
        "  [load-data] started",
        "      loaded 506 rows x 14 columns from bundled",
        "  [load-data] success",
        "  pipeline failure",
    ]


def test_step_errors_stay_visible():
    terminal = io.StringIO()
    CondensedLog(terminal, io.StringIO()).write("    ERROR load: column RM, row 10: 'six' is not a number\n")
    assert terminal.getvalue() == "      ERROR load: column RM, row 10: 'six' is not a number\n"
