"""brain-cnn: classify brain MRI slices by tumour type and explain each call.

Importing the package is cheap: TensorFlow loads only when a model is built,
trained or run.
"""

from brain_cnn.errors import BrainCnnError, DatasetError, ModelFolderError, UnreadableImageError
from brain_cnn.scan.preprocess import PREPROCESSING_VERSION, load_scan

__version__ = "0.1.0"

__all__ = [
    "BrainCnnError",
    "DatasetError",
    "ModelFolderError",
    "UnreadableImageError",
    "PREPROCESSING_VERSION",
    "load_scan",
    "__version__",
]
