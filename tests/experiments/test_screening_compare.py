import numpy as np

from experiments.screening_compare import side_by_side


def test_side_by_side_lines_compare_variants_per_sequence():
    kinds = np.array(["tumour", "tumour", "no tumour", "no tumour", "tumour"])
    sequences = np.array(["T1", "T2", "T1", "T2", "T2"])
    keep = np.array([1, 1, 1, 1, 0], bool)
    negative = np.array([False, True])  # classes: tumour, no tumour
    calls_all_tumour = np.tile([0.9, 0.1], (5, 1))
    perfect = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.3, 0.7], [0.9, 0.1]])
    lines = side_by_side("set", keep, kinds, sequences, negative, [calls_all_tumour, perfect])
    assert [line.split()[0] for line in lines] == ["set", "T1", "T2"]
    assert lines[0].endswith("(4 images)") and lines[1].endswith("(2 images)")
    assert "100.0% /  0.0% / 0.500" in lines[0] and "100.0% / 100.0% / 1.000" in lines[0]
