"""hypernst: portrait style transfer with HyperNST.

The package is laid out by responsibility:

- ``models``   plain ``nn.Module`` networks (no file or network I/O)
- ``faces``    detection, alignment, region parsing, paste-back
- ``pipeline`` composes models into stylize / invert / edit / interpolate
- ``weights``  the weights registry, checkpoint loading, downloads, converters
- ``train``    training stages
- ``eval``     metrics and reports
- ``io``       the one image loader/writer and atomic file writes
- ``cli``      the Typer app: parses arguments, prints, sets exit codes
"""

__version__ = "0.1.0"
