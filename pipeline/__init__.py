"""tfx-bonsai pipelines: the default pipeline, its configuration, runners and CLI."""
import components  # noqa: F401  (selects Keras 2 before TensorFlow is imported)
