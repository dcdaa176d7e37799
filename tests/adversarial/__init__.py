"""Tests that play a hostile network peer against the real agent and daemon."""
