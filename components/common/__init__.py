"""Helpers the components share: model I/O and artifact layout, examples, blessings."""
