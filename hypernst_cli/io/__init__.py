"""File I/O shared by every command: the image loader/writer, atomic writes, input expansion."""

from hypernst_cli.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from hypernst_cli.io.images import load_image, save_gif, save_image
from hypernst_cli.io.inputs import collect_images, file_sha256

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "collect_images",
    "file_sha256",
    "load_image",
    "save_gif",
    "save_image",
]
