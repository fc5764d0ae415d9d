"""The command-line page's reference: the ``--help`` text of ``dropnet`` and each subcommand,
taken from the parser itself so the page cannot drift from the code.

    python docs/figures/cli_help.py [out_dir]     # default: docs/_generated
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

INPUTS = ["python/dropnet/cli.py"]
OUTPUTS = ["cli_help.md"]


def main(out_dir) -> None:
    from dropnet import cli

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width: fix it so the page is stable
    parser = cli._parser()
    parts = ["### `dropnet --help`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parts += [f"### `dropnet {name} --help`", "", "```text", sub.format_help().rstrip(), "```", ""]
    (out / OUTPUTS[0]).write_text("\n".join(parts))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "_generated")
