"""``transmri encoder``: import a zoo encoder, describe a saved one, list the zoo.

The parser uses the standard library only; torch and the importers are
imported inside :func:`run_encoder`, so ``transmri --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_encoder_parser", "run_encoder"]

_KINDS = {"deepbet": "deepbet", "bbox": "deepbet-bbox", "deepbet-bbox": "deepbet-bbox"}


def add_encoder_parser(commands: Any, formatter: type[argparse.HelpFormatter]) -> None:
    """Add ``encoder import|info|list`` to the ``transmri`` sub-parsers."""
    encoder = commands.add_parser(
        "encoder",
        help="import a pretrained encoder from the zoo, describe one, list the zoo",
        description="Public pretrained encoders as transmri encoders (safetensors + card).",
        formatter_class=formatter,
    )
    actions = encoder.add_subparsers(dest="encoder_action", metavar="ACTION")
    actions.required = True
    imp = actions.add_parser(
        "import",
        help="convert a zoo encoder into DIR/encoder.safetensors + encoder.json",
        formatter_class=formatter,
    )
    imp.add_argument(
        "kind",
        metavar="KIND",
        nargs="+",
        help="deepbet (brain-mask network) or 'deepbet bbox' / deepbet-bbox",
    )
    imp.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    imp.add_argument("--source", metavar="PATH", help="the checkpoint (default: installed one)")
    info = actions.add_parser(
        "info", help="print a saved encoder's card", formatter_class=formatter
    )
    info.add_argument("path", metavar="DIR", help="folder, card or weights of an encoder")
    actions.add_parser("list", help="list the zoo's encoders", formatter_class=formatter)


def _zoo_name(kind: list[str]) -> str:
    from transmri.errors import ConfigError

    joined = "-".join(kind)
    name = _KINDS.get(joined, _KINDS.get(kind[-1]) if kind[0] == "deepbet" else None)
    if name is None:
        raise ConfigError(
            f"encoder import: unknown KIND {' '.join(kind)!r}; expected deepbet [bbox]"
        )
    return name


def run_encoder(args: argparse.Namespace) -> int:
    """Run ``transmri encoder ACTION``; return the exit code."""
    if args.encoder_action == "list":
        from transmri.pretrained.zoo import ZOO

        for name, text in ZOO.items():
            print(f"{name:14s} {text}")
        return 0
    if args.encoder_action == "import":
        from transmri.pretrained.zoo import import_encoder

        card_file = import_encoder(_zoo_name(args.kind), Path(args.out), source=args.source)
        print(f"wrote {card_file} and {card_file.with_suffix('.safetensors')}")
        return 0
    from transmri.training.encoder_io import load_encoder

    encoder, card = load_encoder(args.path)
    card.pop("training_subjects", None)
    groups = getattr(encoder, "layer_groups", None)
    summary = {
        "architecture": card.get("architecture"),
        "parameters": sum(p.numel() for p in encoder.parameters()),
        "layer_groups": len(groups()) if callable(groups) else None,
        **{k: v for k, v in card.items() if k not in ("architecture", "load_report")},
    }
    print(json.dumps(summary, indent=2))
    return 0
