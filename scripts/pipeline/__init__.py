"""A consistency check for the Concourse pipeline in ci/: what `fly validate-pipeline` cannot see."""

from scripts.pipeline.check import PRODUCT_ORDER, check_pipeline, check_pipeline_file

__all__ = ["PRODUCT_ORDER", "check_pipeline", "check_pipeline_file"]
