import copy

from experiments.default_rule import verdict


def _model(sensitivity, specificity, at_90, accuracy):
    def cell(spec=specificity):
        return {"sensitivity": sensitivity, "specificity": spec, "sensitivity_at_90_specificity":
                None if spec is None else at_90}

    return {"yes/no set": {"all": cell()},
            "44-class test split": {"by_sequence": {"T1": cell(), "T1C+": cell(None), "T2": cell()}},
            "LGG test patients": {"all": cell()},
            "4-class official test": {"accuracy": accuracy, "images": 337}}


def _comparison(candidate):
    return {"models": {"default": _model(0.5, 1.0, 0.9, 0.96), "map": _model(0.8, 0.9, 0.7, 0.8),
                       "candidate": candidate}}


def test_a_candidate_better_at_its_operating_point_and_close_at_home_passes(capsys):
    assert verdict(_comparison(_model(0.8, 0.95, 0.8, 0.945)), "default", "candidate", "map")
    assert capsys.readouterr().out.rstrip().endswith("becomes the default")


def test_each_part_of_the_rule_can_fail_alone(capsys):
    good = _model(0.8, 0.95, 0.8, 0.945)
    worse_j = copy.deepcopy(good)
    worse_j["LGG test patients"]["all"].update(sensitivity=0.5, specificity=0.9)  # J 1.4 < the default's 1.5
    missed_t1c = copy.deepcopy(good)
    missed_t1c["44-class test split"]["by_sequence"]["T1C+"]["sensitivity"] = 0.4  # no normals: sensitivity
    ranks_worse = _model(0.8, 0.95, 0.67, 0.945)  # 3 points under the map network alone
    home_worse = _model(0.8, 0.95, 0.8, 0.939)  # 2.1 points under the default at home
    for candidate in (worse_j, missed_t1c, ranks_worse, home_worse):
        assert not verdict(_comparison(candidate), "default", "candidate", "map")
        assert capsys.readouterr().out.count("FAIL") == 1
