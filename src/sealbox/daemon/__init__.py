"""The long-running service: schedules, run history, HTTP API, metrics."""
