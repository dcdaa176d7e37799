"""The ``sealbox`` command line: one module per command, each thin (parse, call, render)."""
