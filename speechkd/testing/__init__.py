"""Helpers for tests of code that reads published corpora (importable by users' tests too)."""
