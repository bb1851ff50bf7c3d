"""`python -m ivr.cli`: the same commands as `ivr`."""

from . import main

main()
