"""Helpers the components share: model I/O and artifact layout, examples, blessings,
settings (each parameter defined once) and TFLite helpers."""
