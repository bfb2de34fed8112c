"""`python -m api` runs the `zhida` command line."""

from api.cli import main

main()
