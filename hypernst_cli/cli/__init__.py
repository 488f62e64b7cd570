"""The command-line interface: thin Typer commands over the library.

Commands parse arguments, call the library, print, and set exit codes. Heavy imports (torch,
numpy, PIL) happen inside command bodies so ``hypernst --help`` stays fast.
"""
