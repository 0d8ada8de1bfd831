"""The tiny world and its finished reference run, shared with tests/pipeline/test_run.py."""

from tests.pipeline.test_run import reference, world

__all__ = ["reference", "world"]
