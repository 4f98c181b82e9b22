"""``brain-cnn study``: a study measured as one, with and without a prior, on a tiny tumour-map model."""

import json

import numpy as np

from brain_cnn.cli import main

from conftest import head_volume, make_dicom, make_nifti, phantom


def test_study_with_and_without_a_prior_prints_the_measures(tiny_map_model, tmp_path, capsys):
    volume = tmp_path / "head.nii.gz"
    volume.write_bytes(make_nifti(head_volume(3, depth=12, size=96).transpose(2, 1, 0), gz=True))
    assert main(["study", "--model", str(tiny_map_model), "--json", str(volume)]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert {"volume_ml", "largest_slice", "diameters_mm", "product_mm2", "units", "notes"} <= set(alone)
    assert alone["units"] == "mm" and alone["slices"] == 12 and "prior" not in alone
    assert main(["study", "--model", str(tiny_map_model), "--json", str(volume), "--prior", str(volume)]) == 0
    both = json.loads(capsys.readouterr().out)
    assert both["prior"]["voxels"] == both["voxels"]
    assert both["change"]["category"] in ("stable", "no tumour outlined in either study")
    assert both["change"]["product_percent"] in (0.0, None) and not both["change"]["warnings"]
    assert main(["study", "--model", str(tiny_map_model), str(volume), "--prior", str(volume)]) == 0
    text = capsys.readouterr().out
    assert "volume:" in text and "prior study:" in text and "RANO" in text


def test_a_series_folder_is_one_study_and_other_patients_are_refused_unless_confirmed(tiny_map_model, tmp_path,
                                                                                     capsys):
    for patient in ("A", "B"):
        folder = tmp_path / patient
        folder.mkdir()
        for z in range(4):
            pixels = phantom(64, lesion=True, seed=z).astype(np.uint16) * 4
            (folder / f"IM{z}.dcm").write_bytes(make_dicom(pixels, position=2.5 * z, instance=z + 1,
                                                           series=f"1.2.{ord(patient)}", PatientID=f"P-{patient}"))
    assert main(["study", "--model", str(tiny_map_model), "--json", str(tmp_path / "A")]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["slices"] == 4 and found["spacing_mm"] == [0.5, 0.5, 2.5]
    assert main(["study", "--model", str(tiny_map_model), str(tmp_path / "A"), "--prior", str(tmp_path / "B")]) == 2
    assert "different patients" in capsys.readouterr().err
    assert main(["study", "--model", str(tiny_map_model), "--json", "--same-patient", str(tmp_path / "A"),
                 "--prior", str(tmp_path / "B")]) == 0
    assert any("different patients" in w for w in json.loads(capsys.readouterr().out)["change"]["warnings"])


def test_a_model_without_maps_and_a_missing_path_are_clear_errors(tiny_model, tiny_map_model, tmp_path, capsys):
    assert main(["study", "--model", str(tiny_map_model), str(tmp_path / "nothing.nii")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "a.dcm").write_bytes(make_dicom(phantom(64).astype(np.uint16)))
    assert main(["study", "--model", str(tiny_model), str(tmp_path / "a.dcm")]) == 2
    assert "draws no tumour map" in capsys.readouterr().err
