"""Regression tests for the bugs found in review, one module per topic."""
