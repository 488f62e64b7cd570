"""`python -m hypernst_cli` runs the CLI (also the torchrun entry point)."""

from hypernst_cli.cli.app import main

if __name__ == "__main__":
    main()
