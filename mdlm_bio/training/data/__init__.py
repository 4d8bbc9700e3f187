"""Training data: Lightning data modules for genome windows, labelled sequences and text blocks (genome.py,
labelled.py, text.py) and the builder that picks one for a run and says what the model's vocabulary is
(builder.py; the trainer itself knows no track's tokens). This face imports no Lightning."""

from .vocabulary import DNA_VOCABULARY, preset_backbone

__all__ = ["DNA_VOCABULARY", "preset_backbone"]
