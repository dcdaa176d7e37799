"""Alerts: the event catalogue, email and syslog channels, and when to send."""
