"""The `bonsai` command: run / report (compile / submit / schedule for Kubeflow and Vertex)."""
import argparse
import json
import logging
import sys
import time

from pipeline import config as config_lib


def _load(args):
  return config_lib.load(args.config, args.set)


def cmd_run(args) -> int:
  config = _load(args)
  # pylint: disable=g-import-not-at-top  (TFX loads only once the configuration is valid)
  from pipeline import summary as summary_lib
  from pipeline.runners import local
  start = time.time()
  try:
    summary = local.run(config)
  except local.RunError as e:
    print(f"bonsai run: {e}", file=sys.stderr)
    return 1
  print(f"\nbonsai run: {config.pipeline_name} finished in {time.time() - start:.0f}s")
  print(summary_lib.format_table(summary))
  if args.json:
    print(json.dumps(summary, indent=2, sort_keys=True, default=str))
  return 0 if summary.get("blessed") else 3


def cmd_report(args) -> int:
  from pipeline import report  # pylint: disable=g-import-not-at-top
  config = _load(args)
  path = report.write(config, args.run, args.output)
  print(f"bonsai report: {path}")
  return 0


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
  run.set_defaults(func=cmd_run)
  rep = sub.add_parser("report", help="render an HTML report with charts for a finished run")
  common(rep)
  rep.add_argument("--run", default="", help="run id (default: the latest)")
  rep.add_argument("--output", default="", help="HTML file (default: next to the run summary)")
  rep.set_defaults(func=cmd_report)
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
