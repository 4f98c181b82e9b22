from pathlib import Path

from brain_cnn.evaluation.studies import lgg_studies


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


def test_a_shrunk_study_paints_out_the_rim_and_knows_what_is_left():
    import numpy as np

    from brain_cnn.evaluation.studies import shrunk
    from brain_cnn.inference.study import measure_masks

    yy, xx = np.mgrid[:96, :96]
    disc = (yy - 48) ** 2 + (xx - 48) ** 2 <= 20 ** 2
    images = np.stack([np.where(disc, 220, 90).astype(np.uint8)] * 3)
    truth = np.stack([np.zeros_like(disc), disc, disc])
    painted, left = shrunk(images, truth, 40.0, 0.2)
    assert not left[0].any() and left[1].sum() < disc.sum() * 0.4  # 8 + 2 px off a 20 px radius
    # the rim filled from the tissue on both sides of it: far darker than the tumour, the core untouched
    assert painted[1][disc & ~left[1]].mean() < 180 and painted[1][left[1]].mean() > 200
    before, after = measure_masks(truth, (1, 1), 1), measure_masks(left, (1, 1), 1)
    assert after.product < 0.5 * before.product
    gone, nothing = shrunk(images, truth, 40.0, None)
    assert not nothing.any() and gone[1][disc].mean() < 150


def test_a_combined_folder_reads_the_held_out_patients_of_its_tumour_map_member(tmp_path):
    import json

    import pytest

    from brain_cnn.evaluation.studies import main, sources_file

    maps, combined = tmp_path / "maps", tmp_path / "combined"
    maps.mkdir(), combined.mkdir()
    (maps / "sources.json").write_text(json.dumps({"brain-tumor-lgg": {"test": []}}))
    members = [{"folder": "../classifier"}, {"folder": "../maps", "role": "tumour map"}]
    (combined / "card.json").write_text(json.dumps({"members": members}))
    assert sources_file(maps) == maps / "sources.json"
    assert sources_file(combined).resolve() == (maps / "sources.json").resolve()
    (combined / "card.json").write_text(json.dumps({"members": members[:1]}))
    with pytest.raises(FileNotFoundError, match="LGG test patients are not known"):
        sources_file(combined)
    assert main([str(combined), "--data", str(tmp_path)]) == 2
