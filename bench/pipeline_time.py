"""Where a pipeline run's time goes, component by component, for runs side
by side (a run before a change and a run after it).

  python -m bench.pipeline_time --run before=OUT_A/metadata.sqlite \
      --run after=OUT_B/metadata.sqlite [--note TEXT] [--results FILE]

reads the latest run recorded in each metadata store (`mmse run` keeps it
at `<output>/metadata.sqlite`) and writes `bench/results/pipeline_time.md`:
each component's seconds in each run, the ratio of the first run's to the
last's, and the pipeline's seconds from its first start to its last end.
Components cached in a run show the seconds of the run that computed them.
"""
import argparse
import pathlib
from typing import Dict, List, Sequence, Tuple

RESULTS = (pathlib.Path(__file__).resolve().parent / "results" /
           "pipeline_time.md")


def component_seconds(metadata_path: str) -> Tuple[Dict[str, float], float]:
  """Seconds per component of the latest run, and of the whole run."""
  from tfx_pipeline import run_report  # pylint: disable=g-import-not-at-top
  run = run_report.latest_run(metadata_path)
  seconds = {name: info.get("computed_seconds", info["seconds"])
             for name, info in run["components"].items()}
  return seconds, run["pipeline_seconds"]


def table(runs: Sequence[Tuple[str, Dict[str, float], float]]) -> List[str]:
  """Markdown rows, components by the first run's seconds, longest first."""
  labels = [label for label, _, _ in runs]
  first, last = runs[0][1], runs[-1][1]
  names = sorted({name for _, seconds, _ in runs for name in seconds},
                 key=lambda name: -first.get(name, 0.0))
  ratio = len(runs) > 1
  header = ["component"] + [f"{label} s" for label in labels]
  if ratio:
    header.append(f"{labels[0]} / {labels[-1]}")
  lines = ["| " + " | ".join(header) + " |",
           "| --- |" + " ---: |" * (len(header) - 1)]

  def row(name, values, a, b):
    cells = [name] + [f"{v:.1f}" if v is not None else "" for v in values]
    if ratio:
      cells.append(f"{a / b:.2f}x" if a and b else "")
    return "| " + " | ".join(cells) + " |"

  for name in names:
    lines.append(row(name, [seconds.get(name) for _, seconds, _ in runs],
                     first.get(name), last.get(name)))
  totals = [total for _, _, total in runs]
  lines.append(row("**pipeline**", totals, totals[0], totals[-1]))
  return lines


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--run", action="append", required=True,
                      metavar="LABEL=METADATA",
                      help="a run's label and its metadata.sqlite; repeat")
  parser.add_argument("--note", action="append", default=[],
                      help="a line on how the runs were made; repeat")
  parser.add_argument("--results", default=str(RESULTS))
  args = parser.parse_args(argv)
  runs = []
  for spec in args.run:
    label, sep, path = spec.partition("=")
    if not sep:
      parser.error(f"--run {spec!r}: expected LABEL=METADATA_PATH")
    runs.append((label, *component_seconds(path)))
  lines = ["# Pipeline time by component", "",
           "Seconds each component ran (cached components: the run that "
           "computed them). Written by `python -m bench.pipeline_time`.", ""]
  lines += [f"- {note}" for note in args.note]
  lines += [""] + table(runs) + [""]
  pathlib.Path(args.results).write_text("\n".join(lines))
  print("\n".join(lines))


if __name__ == "__main__":
  main()
