import pytest

from brain_cnn.scan.sequences import sequence_from_header, sequence_of, without_sequence


def test_folder_names():
    assert sequence_of("Astrocitoma T1C+") == "T1C+" and sequence_of("_NORMAL T2") == "T2"
    assert sequence_of("glioma") is None and without_sequence("Astrocitoma T1C+") == "Astrocitoma"


@pytest.mark.parametrize("values, name", [
    ({"SeriesDescription": "AX T1 POST"}, "T1C+"),
    ({"SeriesDescription": "AX T1 PRE"}, "T1"),
    ({"SeriesDescription": "MPRAGE +C"}, "T1C+"),
    ({"SeriesDescription": "Ax T2 FLAIR"}, "FLAIR"),
    ({"SeriesDescription": "T1 FLAIR"}, "T1"),  # T1-weighted, whatever the inversion
    ({"SeriesDescription": "AX T2 FSE"}, "T2"),
    ({"SeriesDescription": "AX T2* GRE"}, "T2*"),  # not a T2
    ({"SeriesDescription": "DWI b1000"}, "DWI"),
    ({"SeriesDescription": "localizer", "ProtocolName": "t2_tse_tra"}, "T2"),
    ({"RepetitionTime": 4000, "EchoTime": 100}, "T2"),
    ({"RepetitionTime": "9000", "EchoTime": "120", "InversionTime": "2500"}, "FLAIR"),
    ({"RepetitionTime": 2300, "EchoTime": 2.98, "InversionTime": 900}, "T1"),  # MPRAGE
    ({"RepetitionTime": 500, "EchoTime": 12, "ContrastBolusAgent": "Gadovist"}, "T1C+"),
    ({"RepetitionTime": 3000, "EchoTime": 20}, "PD"),
    ({"RepetitionTime": [4000], "EchoTime": [100, 200]}, "T2"),  # multi-valued elements: the first value
    ({"SeriesDescription": "localizer"}, None),
    ({"RepetitionTime": 1200, "EchoTime": 45}, None),  # between the textbook ranges: no guess
    ({"EchoTime": "n/a"}, None),
    ({}, None),
])
def test_sequence_from_header(values, name):
    found = sequence_from_header(values)
    assert (found.name if found else None) == name


def test_the_evidence_says_what_decided():
    assert sequence_from_header({"SeriesDescription": "AX T2 FSE", "EchoTime": 3}).evidence == \
        "the series description"  # what decided, never the free text, which can name a person
    assert sequence_from_header({"RepetitionTime": 4000, "EchoTime": 100}).evidence == "TR 4000 ms, TE 100 ms"
    assert sequence_from_header({"RepetitionTime": 500, "EchoTime": 12, "ContrastBolusAgent": "Gd"}).evidence == \
        "TR 500 ms, TE 12 ms; a contrast agent recorded"
