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
        metavar="KIND [PATH]",
        nargs="+",
        help=(
            "deepbet, 'deepbet bbox' / deepbet-bbox (weights from the installed package), or "
            "medicalnet-resnet10|18|34|50, sfcn-age, sfcn-sex followed by the checkpoint "
            "file you provide (see `transmri encoder list`)"
        ),
    )
    imp.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    imp.add_argument(
        "--source", metavar="PATH", help="the checkpoint (deepbet default: the installed one)"
    )
    info = actions.add_parser(
        "info", help="print a saved encoder's card", formatter_class=formatter
    )
    info.add_argument("path", metavar="DIR", help="folder, card or weights of an encoder")
    actions.add_parser("list", help="list the zoo's encoders", formatter_class=formatter)


def _zoo_name(kind: list[str], source: str | None) -> tuple[str, str | None]:
    """The zoo name and checkpoint path of ``KIND [PATH]`` (or ``--source``)."""
    from transmri.errors import ConfigError
    from transmri.pretrained.zoo import USER_CHECKPOINTS

    if kind[0] in USER_CHECKPOINTS:
        if len(kind) > 2 or (len(kind) == 2 and source is not None):
            raise ConfigError(
                f"encoder import: expected {kind[0]} PATH (one checkpoint file), got "
                f"{' '.join(kind[1:])!r}" + (f" and --source {source}" if source else "")
            )
        return kind[0], kind[1] if len(kind) == 2 else source
    joined = "-".join(kind)
    name = _KINDS.get(joined, _KINDS.get(kind[-1]) if kind[0] == "deepbet" else None)
    if name is None:
        raise ConfigError(
            f"encoder import: unknown KIND {' '.join(kind)!r}; expected deepbet [bbox] or "
            f"one of {', '.join(USER_CHECKPOINTS)} followed by the checkpoint file"
        )
    return name, source


def run_encoder(args: argparse.Namespace) -> int:
    """Run ``transmri encoder ACTION``; return the exit code."""
    if args.encoder_action == "list":
        from transmri.pretrained.zoo import ZOO

        for name, text in ZOO.items():
            print(f"{name:20s} {text}")
        return 0
    if args.encoder_action == "import":
        from transmri.pretrained.zoo import import_encoder

        name, source = _zoo_name(args.kind, args.source)
        card_file = import_encoder(name, Path(args.out), source=source)
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
