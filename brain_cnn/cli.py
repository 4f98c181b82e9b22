"""Command line: ``brain-cnn train | evaluate | predict | ...`` (``brain-cnn --help`` lists them).

TensorFlow is imported only inside the commands, so ``--help`` is instant.
Errors a user can cause print one line (``error: ...``) and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from brain_cnn.data.dataset import open_data
from brain_cnn.data.leakage import COPY_BITS, audit_folders, deduplicated_split
from brain_cnn.errors import BrainCnnError, DatasetError, ModelFolderError
from brain_cnn.evaluation.evaluate import evaluate_model_folder
from brain_cnn.evaluation.explanations import evaluate_explanations, read_boxes
from brain_cnn.evaluation.findings import refresh_card
from brain_cnn.evaluation.loso import run_loso
from brain_cnn.evaluation.screening import evaluate_screening
from brain_cnn.files import read_json, write_json
from brain_cnn.inference.conformal import set_text
from brain_cnn.reports.sentences import combination_text
from brain_cnn.inference.decision import TOP_CLASS, TUMOUR_FIRST
from brain_cnn.inference.predictor import Predictor, expand_inputs
from brain_cnn.model.card import EVALUATION_FILE, load_card
from brain_cnn.model.export import export_model
from brain_cnn.model.folder import DEFAULT_MODEL, load_model
from brain_cnn.reports.tables import loso_table, screening_table, summary_table
from brain_cnn.training.combined import make_combined
from brain_cnn.training.ensemble import make_ensemble
from brain_cnn.training.resume import RESUME_DIR
from brain_cnn.training.run import train, TrainConfig

__all__ = ["main", "build_parser"]


def _quiet_tensorflow() -> None:
    """Import TensorFlow with its C++ start-up chatter (CUDA probes, oneDNN notes) silenced.

    Those lines are written to file descriptor 2 before TF_CPP_MIN_LOG_LEVEL
    is read, so stderr is pointed at /dev/null for the import alone.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
            import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _cmd_train(args: argparse.Namespace) -> int:
    config = _config(args, args.data, args.out)
    config.add_data, config.exclude = args.add_data or [], args.exclude or []
    config.name, config.split, config.init_from = args.name, args.split, args.init_from
    config.teacher, config.teacher_weight = args.teacher, args.teacher_weight
    config.teacher_temperature = args.teacher_temperature
    try:
        out = train(config)
    except KeyboardInterrupt:
        if not (Path(config.out) / RESUME_DIR).is_dir():
            raise
        print(f"interrupted: {Path(config.out) / RESUME_DIR} holds the run up to its last finished epoch; "
              "the same command continues it", file=sys.stderr)
        return 130
    if not args.no_evaluate:  # on the held-out splits of the split the run saved
        evaluate_model_folder(out)
    return 0


def _config(args: argparse.Namespace, data: str, out: str):
    return TrainConfig(
        data=data,
        out=out,
        epochs=args.epochs,
        image_size=args.image_size,
        width=args.width,
        depth=args.depth,
        dropout=args.dropout,
        pooling=args.pooling,
        dilate_last_stage=args.dilate_last_stage,
        brain_only=args.brain_only,
        standardise=args.standardise,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        ema_momentum=args.ema,
        patience=args.patience,
        validation_fraction=args.validation_fraction,
        calibration_fraction=args.calibration_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
        augmentation=None if args.no_augment else args.augmentation,
        balance=args.balance,
        max_steps=args.max_steps,
        strategy=args.strategy,
    )


def _cmd_loso(args: argparse.Namespace) -> int:
    results = run_loso(args.sources, args.out, _config(args, "", ""), args.hold_out, args.attach)
    print(loso_table(results))
    return 0


def _wants_screening(args: argparse.Namespace) -> bool:
    """Screening view when asked, or when DATA's classes are not the model's (another data set)."""
    if args.screening or args.label_map:
        return True
    if not args.data:
        return False

    return not set(open_data(args.data).classes) <= set(load_card(args.model).classes)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    if _wants_screening(args):
        if args.name:
            raise DatasetError("--name renames a model evaluated on its own data, not in a screening of another")
        if not args.data:
            raise DatasetError("--screening needs --data: the data set to screen")
        report = evaluate_screening(args.model, args.data, args.label_map, args.split, args.batch_size,
                                    _DECISION[args.decision], args.masks)
        print(screening_table(report))
        if "tumour_maps" in report:
            print("\n".join(_screened_map_lines(report["data_name"], report["tumour_maps"])))
        return 0
    if args.name:
        card = load_card(args.model)
        card.name = args.name
        card.save(args.model)
    report = evaluate_model_folder(args.model, data=args.data, splits=args.split, batch_size=args.batch_size,
                                   flip=_FLIP[args.flip], masks=args.masks, decision=_DECISION[args.decision])
    print(summary_table(report))
    for split, result in report["splits"].items():
        if "tumour_maps" in result:
            print(_tumour_map_line(split, result["tumour_maps"]))
    return 0


def _tumour_map_line(split: str, scores: dict) -> str:
    shown = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    peak = "n/a" if scores["peak_inside"] is None else f"{scores['peak_inside']:.1%}"
    return (f"tumour maps, {split}: {scores['with_tumour_mask']} images with a tumour mask "
            f"({scores['without_tumour_mask']} without): mean Dice {shown(scores['mean_dice'])}, median "
            f"{shown(scores['median_dice'])}, peak inside the tumour {peak}")


def _screened_map_lines(name: str, scores: dict) -> list[str]:
    """A screened data set's tumour-map lines: all its masked images, each sequence, then those not trained on."""
    lines = [_tumour_map_line(name, scores)]
    lines += [_tumour_map_line(f"{name}, {sequence}", s) for sequence, s in scores.get("by_sequence", {}).items()]
    unseen = scores.get("without_training_duplicates")
    return lines + (_screened_map_lines(f"{name}, not trained on", unseen) if unseen else [])


def _cmd_predict(args: argparse.Namespace) -> int:
    predictor = Predictor(args.model, args.coverage)
    if args.masks and not predictor.has_map:
        raise BrainCnnError(f"--masks needs a model with tumour maps; {args.model} has none")
    files = expand_inputs(args.paths)
    if not files:
        raise BrainCnnError("no files to predict (the paths given hold no images)")
    map_files = _MapFiles(args.masks, args.paths) if args.masks else None
    failures, done, last = 0, 0, None
    show_progress = sys.stderr.isatty() and len(files) > args.batch_size
    for result in predictor.predict_files(files, batch_size=args.batch_size, maps=map_files is not None):
        failures += "error" in result
        if "tumour_map" in result:
            result["mask"] = map_files.write(result.pop("tumour_map"), result["file"], result.get("slice_index"))
        if result["file"] != last:
            done, last = done + 1, result["file"]
            if show_progress and done % args.batch_size == 0:
                print(f"\r{done}/{len(files)} files", end="", file=sys.stderr, flush=True)
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            where = result["file"] + (f" [{result['slice']}]" if "slice" in result else "")
            mask = f"\t{result['mask']}" if "mask" in result else ""
            if "error" in result:
                print(f"{where}\terror: {result['error']}", flush=True)
            elif result["label"] is None:
                print(f"{where}\t{result['cannot_assess']}{mask}", flush=True)
            else:
                chosen = result["prediction_set"]
                said = "" if chosen is None else f"\t{set_text(chosen, predictor.classes, result['coverage'])}"
                print(f"{where}\t{result['label']}\t{result['probabilities'][result['label']]:.3f}{said}{mask}",
                      flush=True)
    if show_progress:
        print(f"\r{len(files)}/{len(files)} files", file=sys.stderr)
    if failures:
        print(f"{failures} of {len(files)} files could not be read", file=sys.stderr)
    return 0


class _MapFiles:
    """Where ``predict --masks DIR`` writes each slice's tumour map: the inputs' paths mirrored under DIR from
    the common folder of the PATHs given, ``.png`` appended to the file's name (``.slice-NNN.png`` for a volume's
    slices), so inputs of one name in different folders, a.jpg beside a.png, and the slices of a volume each get
    their own."""

    def __init__(self, folder: str | Path, paths: list[str]):
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BrainCnnError(f"--masks {folder}: cannot make the folder ({error.strerror})") from None
        # A folder given is mirrored from itself, a file from the folder it is in.
        self.common = Path(os.path.commonpath([os.path.abspath(p) if os.path.isdir(p) else os.path.dirname(
            os.path.abspath(p)) for p in paths]))
        self.written: set[Path] = set()

    def write(self, tumour_map, file: str, slice_index: int | None) -> str:
        """Write the map (in the slice's coordinates) as a PNG (:func:`~brain_cnn.inference.outline.map_png`);
        returns its path."""
        from brain_cnn.inference.outline import map_png

        relative = Path(os.path.abspath(file)).relative_to(self.common)
        name = relative.name + ("" if slice_index is None else f".slice-{slice_index:03d}")
        path = self.folder / relative.parent / f"{name}.png"
        copy = 1
        while path in self.written:  # the same file given twice, or a name that mimics a slice's
            copy += 1
            path = self.folder / relative.parent / f"{name}.{copy}.png"
        self.written.add(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(map_png(tumour_map))
        return str(path)


def _study_model(given: str | None) -> Path:
    """The model ``study`` measures with: the one given, else the default when it draws tumour maps, else the
    bundled tumour-map network."""
    from brain_cnn.inference.study import STUDY_MODEL

    if given:
        return Path(given)
    default = Path("models") / DEFAULT_MODEL
    return default if load_card(default).training.get("tumour_map") else Path("models") / STUDY_MODEL


def _study_lines(measure) -> list[str]:
    unit = measure.units
    lines = [f"volume: {measure.volume_ml:.2f} mL ({measure.voxels} voxels)" if measure.volume_ml is not None
             else f"volume: {measure.voxels} voxels (no slice spacing)"]
    if measure.largest_slice is None:
        lines.append("no tumour outlined")
    else:
        longest, perpendicular = measure.diameters
        lines += [f"largest on slice {measure.largest_slice + 1} of {measure.slices}",
                  f"diameters: {longest:.1f} x {perpendicular:.1f} {unit} (product {measure.product:.0f} {unit}²)"]
    return lines + [f"note: {note}" for note in measure.notes]


def _cmd_study(args: argparse.Namespace) -> int:
    from brain_cnn.inference.study import assess_study, compare, measure_case, study_files
    from brain_cnn.scan.read import AXES

    model = _study_model(args.model)
    predictor = Predictor(model)
    if not predictor.has_map:
        raise BrainCnnError(f"{model} draws no tumour map; a study is measured with a tumour-map model")
    axis = AXES[args.plane]
    current = measure_case(assess_study(predictor, study_files(args.scan), axis))
    result = {"model": model.name, **current.as_json()}
    if args.prior:
        prior = measure_case(assess_study(predictor, study_files(args.prior), axis))
        change = compare(current, prior, same_patient_confirmed=args.same_patient)
        result |= {"prior": prior.as_json(), "change": change.as_json()}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"model: {model.name}")
    print("\n".join(_study_lines(current)))
    if args.prior:
        print("prior study:\n  " + "\n  ".join(_study_lines(prior)))
        said = [f"volume {change.volume_percent:+.1f}%" if change.volume_percent is not None else None,
                f"product {change.product_percent:+.1f}%" if change.product_percent is not None else None]
        print(f"change: {', '.join(s for s in said if s) or 'no percentage (nothing outlined before)'}; "
              f"{change.category} by RANO's thresholds on the product (a measurement aid, not the RANO assessment)")
        for warning in change.warnings:
            print(f"warning: {warning}")
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    def show(what: str, found: dict) -> None:
        kinds = ", ".join(f"{n} {k}" for k, n in found["by_kind"].items()) or "none"
        print(f"  {what}: {found['images_with_copy']} of {found['of']} ({kinds})")
        for kind, pairs in found["examples"].items():
            for a, b, bits in pairs:
                print(f"    {kind:<20} {a}  ~  {b}  ({bits} bits)")

    report = audit_folders(args.data, args.max_bits, args.examples)
    print(f"copies: the same slice as it is, mirrored, flipped or rotated (hash of the head crop at "
          f"{report['hash_size']} px, <= {report['max_hash_bits']} of 256 bits)")
    for entry in report["data"]:
        print(f"{entry['root']}: " + ", ".join(f"{s} {n}" for s, n in entry["images"].items()))
        for split, found in entry["within"].items():
            show(f"{split} images with a copy within {split}", found)
        for pair, found in entry["across"].items():
            query, reference = pair.split(" in ")
            show(f"{query} images with a copy in {reference}", found)
    for between in report["between"]:
        show(f"{Path(between['b']).name} images with a copy in {Path(between['a']).name}", between)
    if args.json:
        write_json(args.json, report)
    if args.write_split:
        manifest = deduplicated_split(args.data[0], args.seed, args.max_bits)
        manifest.save(args.write_split)
        print(f"wrote {args.write_split}: " + ", ".join(f"{s} {sum(c.values())}" for s, c in manifest.counts().items()))
    return 0


def _cmd_explain_eval(args: argparse.Namespace) -> int:
    loaded = load_model(args.model)
    boxes_path = Path(args.boxes)
    if not boxes_path.is_file():
        raise BrainCnnError(f"boxes file not found: {boxes_path}")
    result = evaluate_explanations(loaded.model, loaded.card.classes, loaded.card.image_size,
                                   args.data or boxes_path.parent, read_boxes(boxes_path),
                                   decision=loaded.card.decision)
    result["boxes"] = str(boxes_path)
    report_path = loaded.folder / EVALUATION_FILE
    report = read_json(report_path, error=ModelFolderError) if report_path.is_file() else {
        "model": loaded.card.name, "splits": {}}
    report["explanations"] = result
    write_json(report_path, report)
    refresh_card(loaded.folder)  # the card's limitations name the types whose call does not need the tumour
    print(f"{len(result['per_image'])} boxed images ({len(result['skipped'])} skipped); written to {report_path}")
    print(f"  {'method':<12} pointing game  energy in box  IoU (half-max)  peak off the brain")
    for method, row in result["methods"].items():
        off = "n/a" if row["peak_off_brain"] is None else f"{row['peak_off_brain']:.3f}"
        print(f"  {method:<12} {row['pointing_game']:.3f}          {row['energy_in_box']:.3f}          "
              f"{row['iou']:.3f}           {off}")
    for key, title in (("pointing_game", "pointing game"), ("peak_off_brain", "peak off the brain")):
        print(f"  {title} by tumour type: " + "; ".join(
            f"{label} ({next(iter(rows.values()))['images']}, box {result['box_share_by_class'][label]:.1%} of the "
            "input): " + ", ".join(f"{method} {row[key]:.3f}" for method, row in rows.items() if row[key] is not None)
            for label, rows in result["by_class"].items()))
    removal = result["removal"]
    print("  same call with the tumour painted out / with a box of its size painted out elsewhere in the brain: "
          + "; ".join(f"{label} ({row['images']}) {_share(row['called_tumour_hidden'])} / "
                      f"{_share(row['called_elsewhere_hidden'])} (intact {_share(row['called_intact'])})"
                      for label, row in {**removal["by_class"], "all": removal["all"]}.items()))
    return 0


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


_FLIP = {"auto": None, "on": True, "off": False}
_DECISION = {None: None, "top-class": TOP_CLASS, "tumour-first": TUMOUR_FIRST}


def _add_flip_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flip", choices=list(_FLIP), default="auto",
                        help="flip averaging (each slice and its mirror image) on the model's own data: auto "
                        "chooses it on the validation split; off halves the inference cost (default auto)")


def _cmd_ensemble(args: argparse.Namespace) -> int:
    flip = _FLIP[args.flip]
    if any(load_card(member).training.get("tumour_map") for member in args.members):
        # The rule was fitted on each slice and its mirror image, averaged at inference: keep it so unless told.
        flip = True if flip is None else flip
        out = make_combined(args.members, args.out, args.name, args.fit_data, args.batch_size)
        rule = load_card(out).training["combination"]
        print(f"saved {out}: {len(args.members)} members. {combination_text(rule).replace('**', '')}", flush=True)
    else:
        if args.fit_data:
            raise BrainCnnError("--fit-data is for a combined model (one member a tumour-map network)")
        out = make_ensemble(args.members, args.out, args.name)
        print(f"saved {out} ({len(args.members)} members)", flush=True)
    if not args.no_evaluate:
        print(summary_table(evaluate_model_folder(out, batch_size=args.batch_size, flip=flip)))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    info = export_model(args.model, args.format, args.out)
    print(f"wrote {info['path']} ({info['format']}); probabilities match the Keras model to "
          f"{info['max_abs_difference']:.1e}; apply temperature {info['temperature']} for calibrated ones")
    return 0


def _add_recipe_options(parser: argparse.ArgumentParser) -> None:
    """Options that decide a training run (shared by train and loso)."""
    parser.add_argument("--epochs", type=int, default=40, help="maximum epochs (default 40)")
    parser.add_argument("--image-size", type=int, default=160, help="input side in pixels (default 160)")
    parser.add_argument("--width", type=int, default=32, help="filters in the first stage (default 32)")
    parser.add_argument("--depth", type=int, default=4, help="number of conv stages (default 4)")
    parser.add_argument("--dropout", type=float, default=0.3, help="dropout before the head (default 0.3)")
    parser.add_argument("--pooling", choices=["average", "max"], default="average",
                        help="the head: average (global average pooling, dense softmax) or max (a score map per "
                        "class, each class taken at its highest place, so the call rests on one region; default "
                        "average)")
    parser.add_argument("--dilate-last-stage", action="store_true",
                        help="no pooling before the last stage, dilated convolutions in it: a last block twice as "
                        "fine for heat maps (about 1.7x the computation)")
    parser.add_argument("--brain-only", action="store_true",
                        help="black out the skull, the scalp and the background inside the network, so it can only "
                        "use the brain (explain-eval's 'peak off the brain' says how often heat maps land there)")
    parser.add_argument("--standardise", action="store_true",
                        help="give every slice's head one mean and spread of grey levels inside the network, so it "
                        "cannot tell sources apart by brightness and contrast")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="batch size per replica (default 32); the learning rate scales with the replicas")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    parser.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay (default 1e-2)")
    parser.add_argument("--ema", type=float, default=0.0, metavar="MOMENTUM",
                        help="validate, checkpoint and ship an exponential moving average of the weights with "
                        "this momentum, e.g. 0.998 (default 0: off)")
    parser.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs (default 10)")
    parser.add_argument("--validation-fraction", type=float, default=0.1,
                        help="share carved for validation when there is no validation split (default 0.1)")
    parser.add_argument("--calibration-fraction", type=float, default=0.0,
                        help="share of train carved as a calibration split, copies and patients kept together, for "
                        "conformal prediction sets fitted by evaluate (default 0: none; 0.1 is a good choice); with "
                        "--split, carved from that split's training images, its validation and test kept")
    parser.add_argument("--test-fraction", type=float, default=0.15,
                        help="share held out for test when the folder has no splits (default 0.15)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--no-augment", action="store_true", help="turn augmentation off")
    parser.add_argument("--augmentation", choices=["standard", "scanner", "sequence"], default="standard",
                        help="standard: flips, rotation, zoom, shift, brightness, contrast; scanner: also random "
                        "gamma, resolution (blur) and noise, to break scanner cues; sequence: scanner plus, for half "
                        "the images, a random intensity curve that may swap dark and bright, to break sequence "
                        "cues (default standard)")
    parser.add_argument("--balance", choices=["class", "source"], default="class",
                        help="class: each class weighs the same in the loss; source: each (data set, class) cell "
                        "does, so a set that brings mostly normals or mostly tumours cannot stand in for the label "
                        "(default class)")


def _add_train_command(commands) -> None:
    """``brain-cnn train``."""
    train = commands.add_parser(
        "train",
        help="train a model on a folder-per-class data set",
        description="Train a CNN on DATA (ROOT/<split>/<class>/* or ROOT/<class>/*) and write "
        "the model folder OUT: model.keras, card.json, history.json, split.json and, "
        "unless --no-evaluate, evaluation.json.",
    )
    train.add_argument("--data", required=True, help="data folder")
    train.add_argument("--out", required=True, help="model folder to write, e.g. models/NAME")
    train.add_argument("--name", help="model name for the card (default: folder name)")
    _add_recipe_options(train)
    train.add_argument("--strategy", choices=["auto", "default", "mirrored", "multi-worker"], default="auto",
                       help="distribution: auto picks several GPUs (mirrored) or machines (TF_CONFIG) when present")
    train.add_argument("--init-from", metavar="MODEL",
                       help="start from the weights of this model folder: fine-tuning with the same classes, "
                       "or transfer learning with a new softmax head for other classes (same size and architecture)")
    train.add_argument("--teacher", metavar="MODEL",
                       help="distillation: blend this model folder's probabilities (e.g. an ensemble's) into the "
                       "training targets, to carry its accuracy into one network (same classes and input size)")
    train.add_argument("--teacher-weight", type=float, default=0.5,
                       help="the teacher's share of each target, 0 to 1 (default 0.5)")
    train.add_argument("--teacher-temperature", type=float, default=2.0,
                       help="soften the teacher's probabilities by this temperature before blending (default 2)")
    train.add_argument("--split", metavar="PATH",
                       help="use this split manifest (e.g. a de-duplicated one from `brain-cnn audit --write-split`)")
    train.add_argument("--add-data", action="append", metavar="DIR[=MAP.json]",
                       help="another data set for the training split, mapped onto the classes by its label map "
                       "(bundled for the public sets); copies of validation/test images are dropped; "
                       "DIR may be another model's split.json, and then only its training split is added; "
                       "repeatable")
    train.add_argument("--exclude", action="append", metavar="DIR",
                       help="a held-out data set: training and validation images that are copies of its images "
                       "(in any orientation) are dropped; repeatable")
    train.add_argument("--no-evaluate", action="store_true", help="skip evaluation after training")
    train.add_argument("--max-steps", type=int, help=argparse.SUPPRESS)  # smoke tests only
    train.set_defaults(run=_cmd_train)


def _add_evaluate_command(commands) -> None:
    """``brain-cnn evaluate``."""
    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a model folder and write evaluation.json",
        description="Evaluate MODEL on DATA and write evaluation.json into the model folder. "
        "When DATA is the folder the model was trained on, the saved split (split.json) is used, "
        "so the test images are exactly those held out in training.",
    )
    evaluate.add_argument("--model", required=True, help="model folder, e.g. models/brain-tumor-mri")
    evaluate.add_argument("--data", help="data folder (default: the one in the model card)")
    evaluate.add_argument("--split", action="append",
                          help="split to evaluate (test, validation, train, all); repeatable; default test and validation")
    evaluate.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    _add_flip_option(evaluate)
    evaluate.add_argument("--decision", choices=[k for k in _DECISION if k],
                          help="how a call is made from the probabilities: the top class, or tumour first (tumour "
                          "when the tumour classes together hold at least 50 %%, then the most probable tumour "
                          "class); on the model's own data it is written to the card with the figures (default: "
                          "the card's rule)")
    evaluate.add_argument("--screening", action="store_true",
                          help="tumour / no-tumour screening view per source and MRI sequence, written to "
                          "external.json (automatic when DATA's classes are not the model's)")
    evaluate.add_argument("--label-map", metavar="JSON",
                          help="how DATA's class folders map onto the model's classes (default: the bundled "
                          "map for the public data sets, by folder name)")
    evaluate.add_argument("--masks", metavar="DIR",
                          help="tumour-map models: the tumour masks to measure the maps on (Dice, peak inside the "
                          "tumour), mirroring DATA's paths or flat by file name, PNG, tumour above 127 (default: "
                          "DATA-masks beside DATA, where it exists)")
    evaluate.add_argument("--name", help="the model's name on its card, written before it is evaluated (a run "
                          "copied into models/ under the name it ships as; the card, the PDF and the audit log "
                          "show it)")
    evaluate.set_defaults(run=_cmd_evaluate)


def _add_predict_command(commands) -> None:
    """``brain-cnn predict``."""
    predict = commands.add_parser(
        "predict",
        help="classify image files or folders",
        description="Classify each scan in PATH: images, DICOM files (also multi-frame, or a .zip of a "
        "series), NIfTI volumes (.nii, .nii.gz; one line per axial slice). Folders are searched "
        "recursively. An unreadable file is reported and the batch goes on; an image the model "
        "cannot judge (not a brain MRI slice) gets label null and a 'cannot_assess' reason.",
    )
    predict.add_argument("paths", nargs="+", metavar="PATH", help="image file or folder")
    predict.add_argument("--model", default=f"models/{DEFAULT_MODEL}",
                         help=f"model folder (default: the bundled default, models/{DEFAULT_MODEL})")
    predict.add_argument("--json", action="store_true", help="one JSON object per input line")
    predict.add_argument("--masks", metavar="DIR",
                         help="tumour-map models only: write each slice's tumour probability map (0-255 PNG, the "
                         "size of the image or slice as read) under DIR, mirroring the inputs' paths from the "
                         "common folder of the PATHs with .png appended (NAME.slice-NNN.png for each slice of a volume), and "
                         "add its path as \"mask\" to the slice's line")
    predict.add_argument("--batch-size", type=int, default=32,
                         help="files decoded and classified together; bounds memory (default 32)")
    predict.add_argument("--coverage", type=float, default=None, metavar="LEVEL",
                         help="level of the conformal prediction set on each line (default 0.9): the set holds the "
                         "true class for at least this share of scans like the model's calibration scans; refused "
                         "where the calibration split is too small for it")
    predict.set_defaults(run=_cmd_predict)


def _add_study_command(commands) -> None:
    """``brain-cnn study``."""
    study = commands.add_parser(
        "study",
        help="measure a study's tumour (volume, RANO diameters) and its change since a prior study",
        description="Measure the tumour of one study: a NIfTI volume, a DICOM file, a ZIP of a DICOM series or a "
        "folder holding one series. Prints the volume (mL from the header's spacing, else voxels), the slice "
        "where the tumour is largest, its longest diameter and the longest perpendicular to it (RANO's "
        "bidimensional measurement) and their product; with --prior, the same for the prior study and the "
        "change, with the category RANO's thresholds give (a measurement aid, not the RANO assessment).",
    )
    study.add_argument("scan", metavar="SCAN", help="the current study")
    study.add_argument("--prior", metavar="SCAN", help="an earlier study of the same patient")
    study.add_argument("--model", help="a tumour-map model folder (default: the default model if it draws tumour "
                       "maps, else models/brain-tumor-maps)")
    study.add_argument("--plane", choices=["axial", "coronal", "sagittal"], default="axial",
                       help="NIfTI volumes: the plane to slice along (default axial)")
    study.add_argument("--same-patient", action="store_true",
                       help="compare even though the DICOM headers name different patients")
    study.add_argument("--json", action="store_true", help="print one JSON object")
    study.set_defaults(run=_cmd_study)


def _add_audit_command(commands) -> None:
    """``brain-cnn audit``."""
    audit = commands.add_parser(
        "audit",
        help="find copies of a slice (plain, mirrored, flipped, rotated) within and across splits and data sets",
        description="Hash every image of each DATA folder (256-bit DCT hash of the head crop, robust to "
        "resizing, cropping and re-encoding) in its eight orientations and report, by kind (identical, mirrored, "
        "flipped, rotated), the copies within each split, across the splits of a folder (test images with a copy "
        "in train) and between folders.",
    )
    audit.add_argument("data", nargs="+", metavar="DATA", help="data folder(s)")
    audit.add_argument("--max-bits", type=int, default=COPY_BITS,
                       help=f"hash distance (of 256 bits) that counts as a copy (default {COPY_BITS}, the one every "
                       "other command uses)")
    audit.add_argument("--examples", type=int, default=5, help="example pairs to print per finding (default 5)")
    audit.add_argument("--json", help="also write the full report to this JSON file")
    audit.add_argument("--write-split", metavar="PATH",
                       help="write a de-duplicated split manifest of the first DATA folder (use with train --split)")
    audit.add_argument("--seed", type=int, default=42, help="seed of the split that --write-split de-duplicates")
    audit.set_defaults(run=_cmd_audit)


def _add_explain_eval_command(commands) -> None:
    """``brain-cnn explain-eval``."""
    explain_eval = commands.add_parser(
        "explain-eval",
        help="measure the explanation methods against tumour bounding boxes",
        description="For each explanation method (Grad-CAM, Grad-CAM++, Score-CAM, Occlusion) and each boxed image: "
        "pointing game (heat-map maximum inside the box), share of heat-map energy inside the box, and "
        "IoU of the half-maximum region with the box. Results go into the model's evaluation.json.",
    )
    explain_eval.add_argument("--model", required=True, help="model folder")
    explain_eval.add_argument("--boxes", required=True,
                              help="CSV with path,label,x_center,y_center,width,height (fractions of the image)")
    explain_eval.add_argument("--data", help="folder the CSV paths are relative to (default: the CSV's folder)")
    explain_eval.set_defaults(run=_cmd_explain_eval)


def _add_loso_command(commands) -> None:
    """``brain-cnn loso``."""
    loso = commands.add_parser(
        "loso",
        help="leave-one-source-out: train without each data set, then screen it",
        description="For each SOURCE: train a fold model on the other sources (the first as main set, the "
        "rest added through label maps, copies of the held-out set removed), then screen every "
        "image of the held-out set for tumour / no tumour per MRI sequence. Prints the matrix and writes "
        "OUT/loso.json; fold folders are kept and reused when their recipe matches.",
    )
    loso.add_argument("--sources", nargs="+", required=True, metavar="DIR", help="data folders, main set first")
    loso.add_argument("--out", required=True, help="folder for the fold models and loso.json")
    loso.add_argument("--hold-out", action="append", metavar="DIR",
                      help="run only the folds holding out these sources (default: every source); repeatable")
    loso.add_argument("--attach", metavar="MODEL", help="also write loso.json into this model folder")
    _add_recipe_options(loso)
    loso.add_argument("--strategy", choices=["auto", "default", "mirrored", "multi-worker"], default="auto",
                      help=argparse.SUPPRESS)
    loso.add_argument("--max-steps", type=int, help=argparse.SUPPRESS)  # smoke tests only
    loso.set_defaults(run=_cmd_loso)


def _add_ensemble_command(commands) -> None:
    """``brain-cnn ensemble``."""
    ensemble = commands.add_parser(
        "ensemble",
        help="combine trained models into one: classifiers averaged, or classifiers and a tumour-map network",
        description="Write the model folder OUT for an ensemble of MEMBER folders: the mean of their softmax "
        "probabilities. It holds a card and a split (the members' common validation and test splits, the union "
        "of their training splits), no weights: loading checks each member's checksum. With one tumour-map "
        "network among the members it is a combined model: whether there is a tumour comes from the classifiers "
        "and the map network by a logistic rule fitted on validation images no member trained on (their "
        "validation splits and --fit-data), the type from both networks by a fitted blend, the outline from the map "
        "(docs/models.md). Then it is evaluated like a trained model (flip averaging, temperature and gate "
        "chosen on its validation split).",
    )
    ensemble.add_argument("members", nargs="+", metavar="MEMBER",
                          help="model folders trained with the same classes, input size and validation/test split")
    ensemble.add_argument("--out", required=True, help="the ensemble's model folder, e.g. models/NAME")
    ensemble.add_argument("--name", help="model name (default: the folder's name)")
    ensemble.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    ensemble.add_argument("--no-evaluate", action="store_true", help="only write the folder")
    ensemble.add_argument("--fit-data", action="append", default=[], metavar="SPLIT_JSON:SPLIT",
                          help="a combined model: more validation images to fit its rule on, as another model's "
                          "split, e.g. models/brain-tumor-44c/split.json:validation (repeatable; never a test split)")
    _add_flip_option(ensemble)
    ensemble.set_defaults(run=_cmd_ensemble)


def _add_export_command(commands) -> None:
    """``brain-cnn export``."""
    export = commands.add_parser(
        "export",
        help="export a model for deployment (ONNX or TensorFlow SavedModel)",
        description="Export MODEL to ONNX or a TensorFlow SavedModel and check that it gives the same "
        "probabilities as the Keras model. Input: (N, S, S, 1) float32 0..255 after brain-cnn's "
        "preprocessing; output: softmax probabilities (apply the card's temperature to calibrate).",
    )
    export.add_argument("--model", required=True, help="model folder")
    export.add_argument("--format", required=True, choices=["onnx", "saved_model"], help="export format")
    export.add_argument("--out", help="output path (default: MODEL/export/model.onnx or MODEL/export/saved_model)")
    export.set_defaults(run=_cmd_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brain-cnn",
        description="Classify brain MRI slices by tumour type: train, evaluate, predict.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train_command(commands)
    _add_evaluate_command(commands)
    _add_predict_command(commands)
    _add_study_command(commands)
    _add_audit_command(commands)
    _add_explain_eval_command(commands)
    _add_loso_command(commands)
    _add_ensemble_command(commands)
    _add_export_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _quiet_tensorflow()
        return args.run(args)
    except BrainCnnError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("error: out of memory; try a smaller --batch-size or --image-size", file=sys.stderr)
        return 2
