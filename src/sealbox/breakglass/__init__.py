"""The break-the-glass secrets backup format: document, sealing, verification and opening.

``document`` and ``package`` are pure (bytes in, bytes out); ``opener`` does the file I/O and the
key handling for ``sealbox breakglass``.
"""
