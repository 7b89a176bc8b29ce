"""`python -m da2k ...` is the `da2k` command."""

from da2k.cli import main

main(prog_name="da2k")
