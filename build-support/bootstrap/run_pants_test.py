from __future__ import annotations

from run_pants import is_download_failure

DOWNLOAD_FAILED = """\
01:51:38.06 [INFO] Starting: Building nix_docker_layer_tool.pex from resource://x/layer_tool.lock
01:51:46.98 [ERROR] 1 Exception encountered:

Engine traceback:
  in `package` goal

ProcessExecutionFailure: Process 'Building tool.pex from resource://x/tool.lock' failed with exit code 1.
stdout:

stderr:
There were 2 errors downloading required artifacts:
1. isal 1.9.1 from https://files.pythonhosted.org/packages/isal-1.9.1-cp39-cp39-manylinux.whl
    AssertionError
"""

BUILD_FAILED = """\
01:51:46.98 [ERROR] 1 Exception encountered:

Engine traceback:
  in `package` goal

ProcessExecutionFailure: Process 'Building layer 3 of examples/hello:image' failed with exit code 1.
stderr:
nix-store: path '/nix/store/abc-hello' is not valid
"""

# A failed test quoting another Pants run's download failure: pytest indents it under "E".
TEST_QUOTES_ONE = """\
01:58:45.17 [ERROR] Completed: Run Pytest - tests/x_integration_test.py:tests - failed (exit code 1).
E       AssertionError: pants failed (1):
E         01:55:02.04 [ERROR] 1 Exception encountered:
E         ProcessExecutionFailure: Process 'Building pex' failed with exit code 1.
E         WARNING: Retrying after connection broken by 'SSLError(CERTIFICATE_VERIFY_FAILED)'
"""


def test_a_failed_download_is_recognised() -> None:
    assert is_download_failure(DOWNLOAD_FAILED)
    assert is_download_failure(DOWNLOAD_FAILED.replace("AssertionError", "[SSL: CERTIFICATE_VERIFY_FAILED]"))


def test_other_failures_are_not() -> None:
    assert not is_download_failure(BUILD_FAILED)
    assert not is_download_failure(TEST_QUOTES_ONE)
    assert not is_download_failure("")


def test_only_the_last_engine_error_counts() -> None:
    assert not is_download_failure(DOWNLOAD_FAILED + BUILD_FAILED)
    assert is_download_failure(BUILD_FAILED + DOWNLOAD_FAILED)
