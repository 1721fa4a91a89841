"""The `bonsai` command: run / report (compile / submit / schedule for Kubeflow and Vertex)."""
import argparse
import json
import logging
import os
import sys
import tempfile
import time

from tfx_bonsai.pipeline import config as config_lib


def _load(args):
  return config_lib.load(args.config, args.set)


def cmd_run(args) -> int:
  """Runs locally: a line per component, progress bars, the summary; the full logs to a file."""
  from tfx_bonsai.pipeline import console  # pylint: disable=g-import-not-at-top  (no TensorFlow)
  start = time.time()
  error = None
  with console.Capture(verbose=args.verbose) as capture:
    config = _load(args)  # imports TensorFlow: its start-up output goes to the log too
    # pylint: disable=g-import-not-at-top
    from tfx_bonsai.components.common import progress
    from tfx_bonsai.pipeline import figures
    from tfx_bonsai.pipeline import summary as summary_lib
    from tfx_bonsai.pipeline.runners import local
    try:  # a remote pipeline_root: local.run refuses it below, naming the reason
      log = capture.keep_in(console.log_path(
          tempfile.gettempdir() if "://" in config.pipeline_root else config.pipeline_root))
    except OSError as e:
      error = local.RunError(
          f"pipeline_root '{config.pipeline_root}' is not writable: {e.strerror}")
    else:
      print(f"bonsai run: {config.pipeline_name}; full log: {log}", file=capture.out)
      progress.set_stream(capture.err)
      lines = console.ComponentLines(
          lambda line: print(line, file=capture.out),
          figures.describer(local.metadata_config(config), config.pipeline_name))
      try:
        with lines.attached():
          summary = local.run(config)
      except local.RunError as e:
        lines.failed()
        error = e
      finally:
        progress.set_stream(None)
  if error is not None:
    print(f"bonsai run: {error}", file=sys.stderr)
    if capture.path:
      print(f"last lines of the log ({capture.path}):", file=sys.stderr)
      print("\n".join(f"  | {line}" for line in console.tail(capture.path)), file=sys.stderr)
    return 1
  summary["log"] = log
  summary_lib.save(summary, config.pipeline_root)
  print(f"\nbonsai run: {config.pipeline_name} finished in {time.time() - start:.0f}s")
  print(summary_lib.format_table(summary))
  print(f"  full log: {log}")
  if args.json:
    print(json.dumps(summary, indent=2, sort_keys=True, default=str))
  return 0 if summary.get("blessed") else 3


def cmd_report(args) -> int:
  from tfx_bonsai.pipeline import console  # pylint: disable=g-import-not-at-top  (no TensorFlow)
  with console.Capture():  # TensorFlow's start-up output: not for the terminal
    config = _load(args)
    from tfx_bonsai.pipeline import report  # pylint: disable=g-import-not-at-top
    try:
      path = report.write(config, args.run, args.output)
    except ValueError as e:  # no such run
      path, error = "", e
  if not path:
    print(f"bonsai report: {error}", file=sys.stderr)
    return 1
  print(f"bonsai report: {path}")
  return 0


def _compiled(args, config):
  from tfx_bonsai.pipeline.runners import kubeflow  # pylint: disable=g-import-not-at-top
  output = args.output or f"{config.pipeline_name}.json"
  job = kubeflow.compile_pipeline(config, output)
  return kubeflow, job, output


def cmd_compile(args) -> int:
  config = _load(args)
  _, job, output = _compiled(args, config)
  tasks = sorted(job["pipelineSpec"]["root"]["dag"]["tasks"])
  print(f"bonsai compile: wrote {output} ({os.path.getsize(output)} bytes, {len(tasks)} tasks: "
        f"{', '.join(tasks)})")
  return 0


def _send(args, verb: str, cron: str = "") -> int:
  """Compiles, then prints the request (--dry-run) or sends it: one run, or a schedule."""
  config = _load(args)
  from tfx_bonsai.pipeline.runners import kubeflow  # pylint: disable=g-import-not-at-top
  if cron:
    kubeflow.validate_cron(cron)  # before compiling
  kubeflow, job, output = _compiled(args, config)
  parameters = kubeflow.parse_parameters(job, args.param)
  if args.dry_run:
    if config.runner.type == "vertex":
      from google.auth import credentials as auth_credentials  # pylint: disable=g-import-not-at-top
      pipeline_job = kubeflow.vertex_pipeline_job(
          config, output, parameters, credentials=auth_credentials.AnonymousCredentials())
      print(json.dumps(kubeflow.describe(kubeflow.vertex_request(config, pipeline_job, cron)),
                       indent=2))
    else:
      arguments = (kubeflow.kfp_schedule_arguments(config, output, cron, "EXPERIMENT_ID",
                                                   parameters) if cron
                   else kubeflow.kfp_submit_arguments(config, output, parameters))
      print(json.dumps(arguments, indent=2))
    return 0
  try:
    name = (kubeflow.schedule(config, job, output, cron, parameters) if cron
            else kubeflow.submit(config, job, output, parameters))
  except kubeflow.SubmitError as e:
    print(f"bonsai {verb}: {e}", file=sys.stderr)
    return 1
  print(f"bonsai {verb}: {'created' if cron else 'started'} {name}")
  return 0


def cmd_submit(args) -> int:
  return _send(args, "submit")


def cmd_schedule(args) -> int:
  return _send(args, "schedule", args.cron)


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="bonsai", description=__doc__)
  sub = p.add_subparsers(dest="command", required=True)

  def common(s):
    s.add_argument("--config", required=True, help="YAML configuration file")
    s.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override one configuration value (repeatable)")

  run = sub.add_parser("run", help="run the pipeline locally and print its summary")
  common(run)
  run.add_argument("--json", action="store_true", help="also print the summary as JSON")
  run.add_argument("--verbose", "-v", action="store_true",
                   help="also show the full logs on the terminal (they always go to the log file)")
  run.set_defaults(func=cmd_run)
  rep = sub.add_parser("report", help="render an HTML report with charts for a finished run")
  common(rep)
  rep.add_argument("--run", default="", help="run id (default: the latest)")
  rep.add_argument("--output", default="", help="HTML file (default: next to the run summary)")
  rep.set_defaults(func=cmd_report)
  comp = sub.add_parser("compile", help="compile for Kubeflow Pipelines v2 / Vertex AI")
  common(comp)
  comp.add_argument("--output", default="", help="pipeline job JSON (default: PIPELINE_NAME.json)")
  comp.set_defaults(func=cmd_compile)
  sub_ = sub.add_parser("submit", help="compile and start one run on Vertex AI or Kubeflow")
  common(sub_)
  sub_.add_argument("--output", default="", help="pipeline job JSON (default: PIPELINE_NAME.json)")
  sub_.add_argument("--dry-run", action="store_true", help="print the request instead of sending it")
  sub_.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="a runtime parameter's value for this run (repeatable)")
  sub_.set_defaults(func=cmd_submit)
  sch = sub.add_parser("schedule", help="compile and create a recurring run")
  common(sch)
  sch.add_argument("--cron", required=True, help='e.g. "0 3 * * 1" (Vertex also takes "TZ=Europe/Paris 0 3 * * 1")')
  sch.add_argument("--output", default="", help="pipeline job JSON (default: PIPELINE_NAME.json)")
  sch.add_argument("--dry-run", action="store_true", help="print the request instead of sending it")
  sch.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a runtime parameter's value for every scheduled run (repeatable)")
  sch.set_defaults(func=cmd_schedule)
  return p


def main(argv=None) -> int:
  args = parser().parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  absl_logging.set_verbosity(absl_logging.INFO)
  try:
    return args.func(args)
  except config_lib.ConfigError as e:
    print(f"bonsai: configuration error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
