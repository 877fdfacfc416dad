#!/usr/bin/env bash
# Task `ha-test`: the high-availability tests (tests/ha, real pg_auto_failover processes), or the pytest
# selection in CI_PYTEST_ARGS instead.
#   input: source    output: ha-report/junit.xml
. "$(dirname "$0")/lib.sh"
run_tests ha-report tests/ha
echo "test report: ha-report/junit.xml"
