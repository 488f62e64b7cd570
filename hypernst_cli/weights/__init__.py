"""The weights registry (weights.toml), checkpoint loading, downloads and converters."""
