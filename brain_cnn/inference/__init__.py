"""A model folder answering on scans: the Predictor, calibration, a case's assessment."""
