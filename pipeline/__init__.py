"""tfx-bonsai pipelines: the default pipeline, its configuration, runners and CLI."""
