"""Data sets on disk: class folders, splits, the decode-once training pipeline, other sources, label maps, copies."""
