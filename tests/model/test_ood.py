import numpy as np

from brain_cnn.model.ood import Gate, fit_gate, header_check, image_check


def test_image_checks():
    grey = np.random.default_rng(0).integers(0, 255, (32, 32)).astype(np.uint8)
    assert image_check(grey) is None
    assert "colour" in image_check(grey, colourfulness=60)
    assert "blank" in image_check(np.full((32, 32), 7, np.uint8))


def test_header_checks_refuse_other_modalities_and_body_parts_only_when_recognised():
    assert header_check({"modality": "CT", "body part": "HEAD"}).startswith("a CT image (DICOM modality CT)")
    assert "a radiograph" in header_check({"modality": "DX", "body part": "CHEST"})
    assert "the abdomen" in header_check({"modality": "MR", "body part": "ABDOMEN"})
    assert "the l-spine" in header_check({"modality": "MR", "body part": "L-SPINE"})
    for fine in ({}, {"modality": "MR"}, {"modality": "MR", "body part": "BRAIN"}, {"body part": "HEADNECK"},
                 {"modality": "MR", "body part": "Kopf"}, {"modality": "MR", "body part": "HEAD CHEST"},
                 {"modality": "SC"}, {"modality": "OT", "body part": "SELLA"}):
        assert header_check(fine) is None, fine


def test_gate_refuses_far_features_and_keeps_the_validation_rate(tmp_path):
    rng = np.random.default_rng(0)
    means = np.array([[0.0] * 8, [5.0] * 8])
    labels = rng.integers(0, 2, 4000)
    train = means[labels] + rng.normal(0, 1, (4000, 8))
    val_labels = rng.integers(0, 2, 2000)
    validation = means[val_labels] + rng.normal(0, 1, (2000, 8))
    gate = fit_gate(train, labels, validation, percentile=99.0)
    assert gate.refuse(validation).mean() == np.float64(0.01) or abs(gate.refuse(validation).mean() - 0.01) < 0.002
    far = rng.normal(30, 1, (100, 8))
    assert gate.refuse(far).all()
    gate.save(tmp_path / "g.npz")
    loaded = Gate.load(tmp_path / "g.npz")
    assert np.allclose(loaded.distances(far), gate.distances(far)) and loaded.threshold == gate.threshold


def test_gate_distances_are_the_mahalanobis_distances_to_the_nearest_mean():
    rng = np.random.default_rng(1)
    root = rng.normal(size=(12, 12))
    precision = root @ root.T / 12 + np.eye(12)
    means = rng.normal(0, 3, (5, 12))
    gate = Gate(means, precision, threshold=1.0, percentile=99.5)
    features = rng.normal(0, 3, (9, 12)).astype(np.float32)  # the engines' dtype
    direct = [min(float((f - m) @ precision @ (f - m)) for m in means) for f in features.astype(np.float64)]
    assert np.allclose(gate.distances(features), direct, rtol=1e-9)
    assert np.allclose(gate.distances(features[:1]), direct[:1], rtol=1e-9)  # the cached products are reused


def test_a_two_part_gate_refuses_what_either_part_refuses(tmp_path):
    from brain_cnn.model.ood import Gate, fit_gate

    rng = np.random.default_rng(0)
    train = rng.normal(size=(400, 6))
    labels = rng.integers(0, 2, 400)
    validation = rng.normal(size=(200, 6))
    gate = fit_gate(train, labels, validation, split=2)
    assert gate.second is not None and gate.split == 2
    assert gate.refuse(validation).mean() <= 0.02  # each part refuses about 0.5 % of validation
    far_first, far_second = np.zeros((1, 6)), np.zeros((1, 6))
    far_first[0, 0] = 50.0
    far_second[0, 5] = 50.0
    assert gate.refuse(far_first)[0] and gate.refuse(far_second)[0] and not gate.refuse(np.zeros((1, 6)))[0]
    gate.save(tmp_path / "ood.npz")
    again = Gate.load(tmp_path / "ood.npz")
    np.testing.assert_allclose(again.distances(validation), gate.distances(validation))
