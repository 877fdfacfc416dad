"""Python parts of the CI task scripts (scripts/ci/*.sh), which run the same in Concourse and on a laptop."""
