"""From file bytes to a Scan and to the model input: decoding, DICOM, NIfTI, MRI sequences, the head crop."""
