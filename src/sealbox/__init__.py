"""Sealbox: backups for privileged-access-management appliances.

Break-the-glass secrets backups sealed to custodians' master key, system backups and session
recording backups. The CLI is ``sealbox``; see README.md.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
