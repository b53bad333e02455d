"""Opening what an earlier run saved: the folder a resumed run continues in, and the checkpoint an
evaluation measures. Every check is made before anything is written (``UsageError``)."""

from pathlib import Path

from experiment.checks import UsageError, check_bands, load_data
from experiment.config import EVALUATION_KEYS, RESUME_MAY_CHANGE, ConfigError, RunConfig


def launch(processes: int) -> str:
    """The command that starts run.py in ``processes`` processes."""
    return f"torchrun --nproc_per_node={processes} run.py" if processes > 1 else "python run.py"


def saved_config(checkpoint: dict, flag: str, path) -> RunConfig:
    try:
        return RunConfig.from_dict(checkpoint["config"])
    except ConfigError as error:
        raise UsageError(f"{flag} {path}: {error}") from None


def open_resume(config: RunConfig, folder: Path, given: frozenset) -> tuple[dict, RunConfig]:
    """``--resume OUT_DIR``: its checkpoint (with training state) and the configuration of the run it
    continues, with the settings of ``RESUME_MAY_CHANGE`` named on the command line taken from it;
    ``UsageError`` for a missing, unreadable or foreign checkpoint and for a flag that would change the run."""
    from training.checkpoint import CheckpointError, read_checkpoint
    from training.distributed import launched_world_size

    if "out" in given:
        raise UsageError(f"--resume {folder}: a resumed run writes into its own folder and trains; drop --out")
    if not folder.is_dir():
        raise UsageError(f"--resume {folder}: no such folder; give the output folder of an earlier run")
    try:
        checkpoint = read_checkpoint(folder / "checkpoint.pt")
    except CheckpointError as error:
        raise UsageError(f"--resume {folder}: checkpoint.pt: {error}") from None
    if not isinstance(checkpoint.get("training"), dict):
        raise UsageError(f"--resume {folder}: its checkpoint holds no training state (written before resuming "
                         "existed); it can only be evaluated, with --evaluate")
    processes, now = len(checkpoint["training"].get("ranks", [])) or 1, launched_world_size()
    if processes != now:
        raise UsageError(f"--resume {folder}: the run was trained by {processes} process(es), and this launch has "
                         f"{now}; each process resumes its own shards and random streams: {launch(processes)} "
                         f"--resume {folder}")
    saved = saved_config(checkpoint, "--resume", folder)
    for key in sorted(given - set(RESUME_MAY_CHANGE)):
        if getattr(config, key) != getattr(saved, key):
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"--resume {folder}: the run was made with {flag} {getattr(saved, key)}, and a resumed "
                             f"run keeps its model, data and seed: drop {flag} {getattr(config, key)}, or start a "
                             "new run")
    if "epochs" in given and config.epochs < checkpoint["training"]["progress"]["epoch"]:
        raise UsageError(f"--resume {folder}: the run has done {checkpoint['training']['progress']['epoch']} epochs "
                         "already; --epochs must be at least that")
    resumed = saved.but(**{key: getattr(config, key) for key in given & set(RESUME_MAY_CHANGE)}, out=str(folder))
    return checkpoint, resumed


def check_resumed_data(saved: RunConfig, data) -> None:
    """The data of a resumed run (its configuration ``saved``, as ``open_resume`` gives it) are the ones it
    trained on: same image shape and number of images."""
    before = [list(saved.image_shape), saved.train_images]
    now = [list(data.image_shape), len(data.train_values)]
    if now != before:
        raise UsageError(f"--resume {saved.out}: the run trained on {before[1]} images of shape {before[0]}, but "
                         f"{saved.dataset} in {saved.data_dir} now gives {now[1]} of shape {now[0]}: restore "
                         "those images, or start a new run")


def open_checkpoint(config: RunConfig, path: Path, device: str, given: frozenset = frozenset()):
    """The checkpoint of ``--evaluate``, the configuration to evaluate it with (the run's, with this
    command line's evaluation settings), the data set to evaluate it on, and the model and guide it
    holds: every check made before anything is written. The data set and its folder are the run's
    unless the command line names them (``given``). The data are normalized with the map saved in
    the checkpoint (not one recomputed from the files), so outputs map back to the trained units."""
    checkpoint, saved = open_saved(path, device, "--evaluate")
    config = config.but(**{key: getattr(saved, key) for key in ("dataset", "data_dir") if key not in given})
    if config.dataset != saved.dataset:
        raise UsageError(f"--evaluate {path}: the checkpoint was trained on {saved.dataset}, not {config.dataset}; "
                         f"pass --dataset {saved.dataset}")
    on_data = saved.but(data_dir=config.data_dir, download=config.download, test_images=config.test_images)
    data = load_data(on_data, normalization=saved.normalization)
    check_bands(config, data)
    if list(data.image_shape) != list(saved.image_shape):
        raise UsageError(f"--evaluate {path}: the checkpoint expects images of shape {list(saved.image_shape)}, "
                         f"{config.dataset} has {list(data.image_shape)}")
    model, guide = trained_modules(checkpoint, saved, device, "--evaluate", path)
    evaluation = {key: getattr(config, key) for key in EVALUATION_KEYS}
    evaluated = saved.but(**evaluation, device=device, data_dir=config.data_dir, test_images=len(data.test_values),
                          evaluated_checkpoint=str(path)).with_evaluation_defaults()
    return checkpoint, evaluated, data, (model, guide)


def open_saved(path: Path, device: str, flag: str) -> tuple[dict, RunConfig]:
    """The checkpoint at ``path`` (on ``device``) and the configuration of the run that wrote it;
    ``UsageError`` (naming ``flag``) for a missing, unreadable or foreign one."""
    from training.checkpoint import CheckpointError, read_checkpoint

    try:
        checkpoint = read_checkpoint(path, map_location=device)
    except CheckpointError as error:
        hint = "; give the checkpoint.pt of a finished run" if not path.is_file() else ""
        raise UsageError(f"{flag} {path}: {error}{hint}") from None
    return checkpoint, saved_config(checkpoint, flag, path)


def trained_modules(checkpoint: dict, saved: RunConfig, device: str, flag: str, path: Path):
    """The model and guide of a run's configuration ``saved``, holding the checkpoint's parameters."""
    from training.build import build_model_and_guide
    from training.checkpoint import CheckpointError, load_states

    model, guide = build_model_and_guide(saved, saved.image_shape, device)
    try:
        load_states(checkpoint, model, guide)
    except CheckpointError as error:
        raise UsageError(f"{flag} {path}: {error}") from None
    return model, guide


def predictive_draw(model, guide, saved: RunConfig):
    """``draw(tiles, k)``: k draws of x given LR tiles and their components (``predictive_components``), with the
    run's own importance resampling and posterior fitting (``sr_proposals``, ``sr_fit_steps``)."""
    from evaluation.superres import predictive_components

    proposals, fit_steps = saved.sr_proposals or 0, saved.sr_fit_steps or 0

    def draw(tiles, k):
        return predictive_components(model, guide, tiles, k, proposals, fit_steps)
    return draw
