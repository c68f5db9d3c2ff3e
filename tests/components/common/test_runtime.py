"""components/common/runtime.py: which failures become one line, and which keep their traceback."""

import pytest

from boston_model.errors import BadInput, ReleaseFailed
from boston_model.store import StoreError
from components.common.runtime import fail_with_one_line


@pytest.mark.parametrize(
    "error",
    [BadInput("column RM, row 3: missing value"), StoreError("cannot reach S3 endpoint x:1"),
     ReleaseFailed("InferenceService boston-housing failed:\n  image pull")],
)
def test_expected_errors_become_one_line_and_exit_1(error, capsys):
    with pytest.raises(SystemExit) as info, fail_with_one_line("step"):
        raise error
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ERROR step: ")


def test_bugs_keep_their_traceback():
    with pytest.raises(KeyError), fail_with_one_line("step"):
        raise KeyError("a bug, not a user error")
    with pytest.raises(RuntimeError), fail_with_one_line("step"):
        raise RuntimeError("neither")
