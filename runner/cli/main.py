"""The `dlrun` command line. TensorFlow is imported only inside the verbs that need it."""

from __future__ import annotations

import argparse
import json
import os
import sys

from runner.cli.output import configure_messages
from runner.kernel.errors import EXIT_INTERRUPTED, EXIT_PREEMPTED, DlrunError


def _process_started() -> float:
    """time.perf_counter() at this process's start (Linux: /proc; elsewhere: now)."""
    import time

    try:
        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        since_start = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.perf_counter() - since_start
    except (OSError, ValueError, IndexError, AttributeError):
        return time.perf_counter()


def _add_spec(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="experiment spec (YAML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key with a YAML value, e.g. --set train.epochs=5 (repeatable)")


def cmd_validate(args) -> int:
    from runner.spec import load_config

    cfg, loaded = load_config(args.spec, args.overrides)
    if args.deep:
        from runner.spec.deep_checks import deep_check

        deep_check(cfg, loaded)
    print(f"{args.spec}: ok")
    return 0


def cmd_render(args) -> int:
    from runner.spec import load_config, render

    cfg, _ = load_config(args.spec, args.overrides)
    sys.stdout.write(render(cfg))
    return 0


def cmd_schema(args) -> int:
    from runner.spec.schema import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_summary(args) -> int:
    from runner.spec import load_config

    cfg, loaded = load_config(args.spec, args.overrides)
    from runner.spec.deep_checks import deep_check
    from runner.tools.summary import model_summary

    deep_check(cfg, loaded)
    print(model_summary(cfg))
    return 0


def _train(cfg, loaded, run_dir, spec_path) -> int:
    """What `train` and `resume` share: data and devices ready, Keras's checks, the run, its summary."""
    from runner.data.build import ensure_available

    ensure_available(cfg.data)  # missing data that cannot be fetched fails in seconds, before TensorFlow loads
    from runner.spec.deep_checks import deep_check
    from runner.distribute.strategy import configure_devices
    from runner.cli.output import export_lines, kfold_summary, run_summary
    from runner.run.train import train

    configure_devices(cfg.distribute)  # logical devices can only be set before TensorFlow initializes them
    deep_check(cfg, loaded)
    from runner.callbacks.epoch_report import EpochReport
    from runner.cli.output import EpochLines

    # progress lines through the CLI's channel; wall_s counted from the process's start
    result = train(cfg, run_dir, spec_path=spec_path, extra_callbacks=[EpochReport(EpochLines(sys.stderr))],
                   started_at=_process_started())
    if result.exports:
        print(export_lines(result.exports))
    print((kfold_summary if "kfold" in result.metrics else run_summary)(result.metrics))
    print(f"run directory: {result.run_dir.path}")
    return 0


def cmd_train(args) -> int:
    from runner.kernel import run_dir as rd
    from runner.spec import load_config

    cfg, loaded = load_config(args.spec, args.overrides)
    return _train(cfg, loaded, rd.RunDir.at(args.run_dir) if args.run_dir else None, args.spec)


def cmd_sweep(args) -> int:
    from runner.sweep.study import run_sweep, show_status

    verb = show_status if args.status else run_sweep
    print(verb(args.spec, args.overrides, args.trials, args.storage))
    return 0


def cmd_resume(args) -> int:
    from pathlib import Path

    from runner.kernel import run_dir as rd
    from runner.kernel.errors import ConfigError
    from runner.spec import load_config

    config = Path(args.run_dir) / rd.CONFIG
    if not config.is_file():
        raise ConfigError(f"{args.run_dir}: not a run directory (no config.yaml); pass a folder that `dlrun train` "
                          "wrote")
    cfg, loaded = load_config(config, args.overrides)
    # a k-fold parent finishes every fold; a fold's own run directory resumes as the single run it is
    return _train(cfg, loaded, rd.RunDir(Path(args.run_dir)), str(config))


def cmd_eval(args) -> int:
    from runner.tools.open_run import open_run

    run = open_run(args.run_dir)
    from runner.tools.evaluate import evaluate_run, format_result

    print(format_result(evaluate_run(run, args.split, args.checkpoint, args.unsafe)))
    return 0


def cmd_predict(args) -> int:
    from runner.kernel.errors import ConfigError
    from runner.tools.open_run import open_run

    run = open_run(args.run_dir)
    from runner.tools.predict import format_records, predict_run

    if run.cfg.task == "gan":  # task gan: a grid of new samples, no inputs
        from runner.tools.predict import sample_grid

        if args.inputs:
            raise ConfigError(f"{args.run_dir} is a gan run: predict draws new samples (--samples N, --class K) "
                              f"and reads no inputs; received {args.inputs[0]}")
        print(sample_grid(run, args.samples, args.label, args.out, args.unsafe))
        return 0
    if not args.inputs:
        raise ConfigError("predict: name the inputs to predict (image files, a .csv, a .txt of lines, an .npz)")
    print(format_records(predict_run(run, args.inputs, args.top_k, args.unsafe), args.style))
    return 0


def cmd_export(args) -> int:
    from runner.tools.open_run import open_run

    run = open_run(args.run_dir)
    from runner.cli.output import export_lines
    from runner.tools.export import export_run, raise_failures

    results = export_run(run, [args.format], args.quantize, args.out, args.unsafe)
    print(export_lines(results))
    raise_failures(results)
    return 0


def cmd_ls(args) -> int:
    from runner.tools.runs import as_json, find_runs, runs_table

    runs = find_runs(args.runs_dir)
    if args.json:
        print(as_json(runs))
    elif runs:
        print(runs_table(runs, args.runs_dir))
    else:
        print(f"no runs under {args.runs_dir}")
    return 0


def cmd_compare(args) -> int:
    from runner.tools.runs import compare, compare_json

    print(compare_json(args.run_dirs) if args.json else compare(args.run_dirs))
    return 0


def cmd_tensorboard(args) -> int:
    from runner.tools.tensorboard import serve

    return serve(args.runs_dir, args.host, args.port)


def cmd_data_preview(args) -> int:
    from runner.spec import load_config

    cfg, _ = load_config(args.spec, args.overrides)
    from runner.tools.preview import preview

    print(preview(cfg, args.n, args.out or f"{cfg.name}-preview.png"))
    return 0


def cmd_env(args) -> int:
    from runner.tools.environment import current_machine

    print(json.dumps(current_machine(), indent=2, default=str))
    return 0


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1; received {text!r}")
    return int(text)


def _add_run_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `dlrun train`")
    p.add_argument("--unsafe", action="store_true",
                   help="load model files that hold Python code (Lambda layers): only for files you trust")


def build_parser() -> argparse.ArgumentParser:
    from runner.artifacts.export_formats import EXPORT_FORMATS, QUANTIZE, format_choices

    parser = argparse.ArgumentParser(
        prog="dlrun", description="Configuration-driven deep-learning experiments for Keras 3 on TensorFlow.",
        epilog="`dlrun SPEC.yaml` is short for `dlrun train SPEC.yaml`. Add --debug to any verb for tracebacks, "
               "--verbose for TensorFlow's own log lines and library warnings.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's C++ log lines and library warnings (hidden by default)")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")

    p = sub.add_parser("train", help="train a spec and write a run directory")
    _add_spec(p)
    p.add_argument("--run-dir", help="write the run here instead of output.dir/<name>/<timestamp>-<hex>; "
                                      "a directory that holds this run continues it from its last backup")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("resume", help="continue an interrupted run from its last backup")
    p.add_argument("run_dir", help="the run directory")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="only train.epochs (to grow) and output/logging keys may change, e.g. --set train.epochs=20")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("validate", help="check a spec without importing TensorFlow")
    _add_spec(p)
    p.add_argument("--deep", action="store_true", help="also check what only Keras can judge (layer lists)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("render", help="print the fully resolved spec")
    _add_spec(p)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("schema", help="print the JSON Schema of specs (for editors)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("summary", help="model summary and parameter counts, without training")
    _add_spec(p)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("eval", help="evaluate a run's model: metrics, per-class report, confusion matrix")
    _add_run_dir(p)
    p.add_argument("--split", choices=("test", "validation", "train"), default="test", help="default: test")
    p.add_argument("--checkpoint", choices=("best", "last"), default="final",
                   help="evaluate checkpoints/best.keras or last.keras instead of the final model.keras")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="predict image files, CSV rows, text lines or .npz arrays")
    _add_run_dir(p)
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, a .csv, a .txt of lines, an .npz "
                                                             "(none for a gan run)")
    style = p.add_mutually_exclusive_group()
    style.add_argument("--json", dest="style", action="store_const", const="json", help="print JSON")
    style.add_argument("--csv", dest="style", action="store_const", const="csv", help="print CSV")
    p.set_defaults(style="table")
    p.add_argument("--top-k", type=_positive, default=3, metavar="K", help="classes shown per input (default 3)")
    p.add_argument("--samples", type=_positive, default=64, metavar="N", help="gan run: images in the grid (default 64)")
    p.add_argument("--class", dest="label", type=int, metavar="K", help="conditional gan run: samples of class K")
    p.add_argument("--out", metavar="FILE.png", help="gan run: the grid's file (default RUN_DIR/samples-<N>.png)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="export a run's model for serving, checked by the runtime that reads it")
    _add_run_dir(p)
    p.add_argument("--format", required=True, choices=format_choices(),
                   help="; ".join(f"{e.name}: {e.description}" for e in EXPORT_FORMATS.entries()))
    p.add_argument("--quantize", choices=QUANTIZE,
                   help="; ".join(f"{e.name}: {' or '.join(e.quantizes)}" for e in EXPORT_FORMATS.entries()
                                  if e.quantizes) + " (litert int8: full-integer, calibrated on training examples; "
                                                    "onnx int8: int8 weights, activations quantized per call)")
    p.add_argument("--out", help="folder for the exported files (default RUN_DIR/export)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("ls", help="list runs, newest first: state, epochs, best value, test metrics, train_s (the "
                                  "fit, first to last epoch) and wall_s (the whole process)")
    p.add_argument("runs_dir", nargs="?", default="runs", metavar="RUNS_DIR", help="default: runs")
    p.add_argument("--json", action="store_true", help="print only a JSON list of runs")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("compare", help="config differences and metrics of runs, side by side")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON, every value whole")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("sweep", help="hyper-parameter search of the spec's sweep: block (Optuna); rerun to resume")
    _add_spec(p)
    p.add_argument("--trials", type=_positive, help="budget: finished trials of the whole study (default sweep.trials)")
    p.add_argument("--storage", metavar="URL",
                   help="SQLAlchemy URL of the study, shared by workers (default sqlite:///OUTPUT_DIR/NAME/sweep.db)")
    p.add_argument("--status", action="store_true", help="show the study's progress and best trial; train nothing")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("tensorboard", help="TensorBoard over a runs folder (127.0.0.1 unless --host)")
    p.add_argument("runs_dir", nargs="?", default="runs", metavar="RUNS_DIR", help="default: runs")
    p.add_argument("--port", type=_positive, default=6006, help="default: 6006")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind (default 127.0.0.1); TensorBoard has no authentication")
    p.set_defaults(func=cmd_tensorboard)

    p = sub.add_parser("env", help="versions, Python, devices, strategy, git commit of this machine (JSON)")
    p.set_defaults(func=cmd_env)

    p = sub.add_parser("data", help="look at a spec's data: `dlrun data preview SPEC`")
    data_verbs = p.add_subparsers(dest="data_verb", metavar="DATA_VERB", required=True)
    p = data_verbs.add_parser("preview", help="PNG grid of augmented training samples with their labels")
    _add_spec(p)
    p.add_argument("--n", type=_positive, default=32, help="samples shown (default 32)")
    p.add_argument("--out", metavar="FILE.png", help="default: <name>-preview.png in the current folder")
    p.set_defaults(func=cmd_data_preview)
    parser.verbs = sub.choices  # every verb registered above, for `dlrun SPEC` dispatch
    return parser


def main(argv=None) -> int:
    """The `dlrun` program: run a verb and return its exit code; as the program itself (argv None: from
    sys.argv), end the process as soon as the verb's files and output are flushed."""
    as_program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    debug, verbose = "--debug" in argv, "--verbose" in argv
    for flag in ("--debug", "--verbose"):
        while flag in argv:
            argv.remove(flag)
    from runner.cli.quiet import quiet_libraries
    from runner.cli.tensorflow_import import import_tensorflow_when_needed

    quiet_libraries(verbose)
    import_tensorflow_when_needed(quiet=not verbose)
    configure_messages()
    # pydantic looks for plugins in every installed package's entry points when it builds the first model
    # (tens of ms of `dlrun validate`); dlrun's spec models want none
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    code = _dispatch(argv, debug)
    if as_program:
        _exit_promptly(code)
    return code


def _exit_promptly(code: int) -> None:
    """os._exit once everything is written: the interpreter's teardown of TensorFlow (seconds) is wasted wait.

    Only when TensorFlow was imported (otherwise the teardown costs nothing); atexit handlers of dlrun's own
    are the writer's drain, done here first.
    """
    if "tensorflow" not in sys.modules:
        return
    writer = sys.modules.get("runner.kernel.writer")
    if writer is not None:
        try:
            writer.flush()
        except DlrunError as e:  # a background write failed after the last check: the run is not complete
            print(e.message, file=sys.stderr)
            code = e.exit_code or 1
        except Exception as e:  # noqa: BLE001  the same, for an error that is not dlrun's
            print(f"dlrun: writing an artifact failed: {e}", file=sys.stderr)
            code = 1
    # the atexit handlers are cheap (TensorFlow's remove its autograph temp files); the slow part is the
    # interpreter's teardown of TensorFlow's objects, which os._exit skips
    import atexit

    atexit._run_exitfuncs()
    _remove_autograph_bytecode()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _remove_autograph_bytecode() -> None:
    """The bytecode Python cached for autograph's generated modules (TMPDIR/__pycache__), a few files a run.

    TensorFlow's atexit handlers delete the generated source files but not the bytecode beside them.
    """
    for name, module in list(sys.modules.items()):
        cached = getattr(module, "__cached__", None) if name.startswith("__autograph_generated_file") else None
        if cached:
            try:
                os.remove(cached)
            except OSError:  # not written (bytecode caching off), or already gone
                pass


def _dispatch(argv: list, debug: bool) -> int:
    parser = build_parser()
    if argv and argv[0] not in parser.verbs and argv[0].endswith((".yaml", ".yml")):
        argv.insert(0, "train")  # `dlrun SPEC.yaml` is `dlrun train SPEC.yaml`
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except DlrunError as e:
        if debug:
            raise
        print(e.message, file=sys.stderr)
        if e.exit_code in (EXIT_INTERRUPTED, EXIT_PREEMPTED):
            # the backup and status are on disk (fsynced): skip TensorFlow's teardown, which takes seconds of a
            # preemption's grace period
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(e.exit_code)
        return e.exit_code
    except KeyboardInterrupt:
        print("dlrun: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
