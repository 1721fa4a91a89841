"""One short module per orchestrator."""
