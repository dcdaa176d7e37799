"""Compositions of vetted primitives (age via pyrage, SLIP-39, Ed25519). No primitive lives here."""
