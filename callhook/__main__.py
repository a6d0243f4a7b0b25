"""`python -m callhook`: the same as the `callhook` command."""

from callhook.cli import main

main()
