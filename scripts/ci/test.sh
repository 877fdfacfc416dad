#!/usr/bin/env bash
# Task `test`: every test of the repository (`make test`: lint, then pytest), or, when CI_PYTEST_ARGS is
# set, only that pytest selection (no lint), e.g. CI_PYTEST_ARGS="tests/unit -k credentials".
#   input: source    output: test-report/junit.xml
. "$(dirname "$0")/lib.sh"
run_tests test-report
echo "test report: test-report/junit.xml"
