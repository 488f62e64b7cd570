"""Networks of the paper as plain ``nn.Module``s: no file or network I/O here."""
