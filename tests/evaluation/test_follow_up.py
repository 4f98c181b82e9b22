from pathlib import Path

from brain_cnn.evaluation.follow_up import lgg_studies


def test_held_out_slices_become_one_study_per_patient_and_sequence_in_slice_order():
    data = Path("/data")
    held = ["glioma FLAIR/TCGA_A_1_10.jpg", "no tumour FLAIR/TCGA_A_1_2.jpg", "glioma FLAIR/TCGA_A_1_9.jpg",
            "glioma T1/TCGA_A_1_9.jpg", "no tumour T1C+/TCGA_B_7_3.jpg", "odd name.jpg/x"]
    studies = lgg_studies(data, held)
    assert list(studies) == [("TCGA_A_1", "FLAIR"), ("TCGA_A_1", "T1"), ("TCGA_B_7", "T1C+")]
    flair = studies[("TCGA_A_1", "FLAIR")]
    assert [n for n, _, _ in flair] == [2, 9, 10]
    assert flair[0][2] is None and flair[1][2] == data / "brain-tumor-lgg-masks" / "TCGA_A_1_9.png"
    assert flair[2][1] == data / "brain-tumor-lgg" / "glioma FLAIR/TCGA_A_1_10.jpg"
