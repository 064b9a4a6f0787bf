"""The `weron` command line: flag parsing only; the work is done by the library."""
