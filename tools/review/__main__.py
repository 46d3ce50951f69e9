"""CLI: review the synthesized templates of one cloud assembly (one stage).

    python -m tools.review --cdk-out cdk.out/dev [--baseline DIR_OR_GIT_REF] [--out FILE]

--baseline DIR    a previous cloud assembly (e.g. a copy of cdk.out/dev kept from the last
                  release) to compare replacement-causing properties against.
--baseline REF    a git commit-ish: its tree is extracted with `git archive` and synthesized
                  offline by --baseline-cmd (default `make synth`) with this checkout's .venv
                  and node_modules linked in; --baseline-out names the assembly it leaves
                  (default: the --cdk-out path). Cached per commit under .cache/review-baseline.
Exit status: 0 (flags are for the reviewer), 1 with --fail-on-flags when anything is flagged
that no cdk-nag acknowledgement with a reason covers, 2 on bad input, 3 when the baseline
comparison finds a change that would replace a live MWAA environment and the stage does not
allow it (``allow_environment_replacement``): refused whatever the other options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.review.analysis import review
from tools.review.assembly import ReviewInputError, baseline_from_git, load_cloud_assembly
from tools.review.report import flag_line, ordered_flags, summary, to_markdown

SHOWN_FLAGS = 25


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mwaa-upgrade review", description=__doc__.split("\n")[0])
    parser.add_argument("--cdk-out", required=True, help="cloud assembly directory (one stage)")
    parser.add_argument("--baseline", help="previous cloud assembly directory, or a git ref")
    parser.add_argument(
        "--baseline-cmd",
        default="make synth",
        help="command synthesizing a git-ref baseline (runs in the extracted tree)",
    )
    parser.add_argument("--baseline-out", help="assembly path the command leaves (default: --cdk-out)")
    parser.add_argument("--repo", default=".", help="git repository for a ref baseline (default: .)")
    parser.add_argument("--out", help="write the Markdown review here")
    parser.add_argument("--title", help="report title (default: the --cdk-out path)")
    parser.add_argument(
        "--fail-on-flags",
        action="store_true",
        help="exit 1 when a flag is not acknowledged (acknowledged ones never fail)",
    )
    args = parser.parse_args(argv)

    try:
        stacks, validation_report = load_cloud_assembly(args.cdk_out)
        baseline, label = None, ""
        if args.baseline:
            if Path(args.baseline).is_dir():
                baseline_dir = Path(args.baseline)
            else:
                repo = Path(args.repo).resolve()
                baseline_dir = baseline_from_git(
                    repo=repo,
                    ref=args.baseline,
                    command=args.baseline_cmd,
                    out=args.baseline_out or args.cdk_out,
                    cache_dir=repo / ".cache" / "review-baseline",
                )
            baseline, _ = load_cloud_assembly(baseline_dir)
            label = f"`{args.baseline}`"
    except ReviewInputError as exc:
        print(f"review: error: {exc}", file=sys.stderr)
        return 2

    result = review(stacks, baseline, validation_report)
    title = args.title or args.cdk_out
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(to_markdown(result, title=title, baseline_label=label), encoding="utf-8")
    print(summary(result, title=title, baseline_label=label))
    # every unacknowledged flag is printed; acknowledged ones while there is room
    flags = ordered_flags(result["flags"])
    unacknowledged = [f for f in flags if not f["acknowledged"]]
    shown = flags[: max(SHOWN_FLAGS, len(unacknowledged))]
    for flag in shown:
        print("  " + flag_line(flag, reason_chars=100))
    if len(flags) > len(shown):
        print(f"  ... {len(flags) - len(shown)} more acknowledged flags in the report")
    if args.out:
        print(f"review written to {args.out}")
    if result["refused"]:
        print(
            f"review: REFUSED: {len(result['refused'])} change(s) would replace a live MWAA environment "
            "(see the [refused] lines)",
            file=sys.stderr,
        )
        return 3
    return 1 if args.fail_on_flags and unacknowledged else 0


if __name__ == "__main__":
    sys.exit(main())
