"""Face detection, FFHQ alignment, 3-region parsing and paste-back."""
