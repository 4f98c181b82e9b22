"""Errors that carry a message meant for the person at the keyboard.

Every failure a user can cause (a bad file, a wrong folder, a tampered model)
raises one of these; the CLI and the app print ``str(error)`` and go on.
"""

__all__ = ["BrainCnnError", "UnreadableImageError", "DatasetError", "ModelFolderError"]


class BrainCnnError(Exception):
    """Base class: the message is one clear sentence, shown as is."""


class UnreadableImageError(BrainCnnError):
    """A file that cannot be turned into a model input."""


class DatasetError(BrainCnnError):
    """A data folder that cannot be used for training or evaluation."""


class ModelFolderError(BrainCnnError):
    """A model folder that is missing, incomplete or fails its checksum."""
