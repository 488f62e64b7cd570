"""Training stages (generator, encoder, reconstruct, stylize)."""
