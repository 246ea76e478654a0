"""Convert a released MMV checkpoint (DeepMind's Haiku ``.pkl``, or a flat ``.npz``) into an mmv checkpoint.

Usage::

    python -m training.convert_official --checkpoint mmv_s3d.pkl --out models/mmv_s3d
    python -m training.convert_official --checkpoint mmv_tsm_resnet_x1.pkl --out models/mmv_tsm --vocab words.txt
    python -m training.convert_official --checkpoint tree.npz --out models/mmv_s3d   # a 'module/path:leaf' npz
    python -m training.convert_official --checkpoint mmv_s3d.pkl --out models/mmv_s3d_224 --frame-size 224 --fps 12.5

The ``.pkl`` is read by a restricted unpickler (numpy arrays, plain containers and the Haiku / JAX containers
only, see :mod:`mmv.official.unpickle`): nothing in the file is ever executed. The output directory holds
``config.json`` (one of the presets ``mmv_s3d``, ``mmv_tsm_resnet_x1``, ``mmv_tsm_resnet_x2``, with the table's
size), ``model.safetensors`` and, with ``--vocab``, ``vocab.txt``. ``--frame-size``, ``--num-frames`` and ``--fps``
change only how clips are read (the released models' training crop is 32 x 200 x 200 at 10 fps; the official UCF101
linear protocol reads 32 frames of 224 x 224 at stride 2 of 25 fps, i.e. ``--frame-size 224 --fps 12.5``).

The released files hold the 65,536 x 300 word table but not the words of its rows. Without ``--vocab`` the
converted model embeds video and audio (S_va, and audio/video in S_vat); text queries are refused with a message
that says how to add the list. ``--vocab`` takes one word per row of the table, in row order; rows 0 and 1 are used
as the padding and unknown-word rows (their text is replaced by ``<pad>`` / ``<unk>``), as in every vocabulary here.

The weights are DeepMind's, under CC BY-NC 4.0 (non-commercial use, attribution); the converted checkpoint
records that licence and the source file's SHA-256 in its metadata. Exit status 0 on success, 2 with a clear
message for an unreadable, refused or unexpected file.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

LICENCE = "CC BY-NC 4.0 (weights released by DeepMind with google-deepmind/deepmind-research mmv/; not mmv's licence)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.convert_official",
        description="Convert a released MMV checkpoint (.pkl or flat .npz) into an mmv checkpoint directory.",
        allow_abbrev=False,
    )
    parser.add_argument("--checkpoint", required=True, help="mmv_s3d.pkl, mmv_tsm_resnet_x1.pkl, ... or a flat .npz")
    parser.add_argument("--out", required=True, help="checkpoint directory to write (replaced when it exists)")
    parser.add_argument("--vocab", default=None, help="word list, one word per row of the word table (optional)")
    parser.add_argument("--frame-size", type=int, default=None, help="input crop stored in the config (default 200)")
    parser.add_argument("--num-frames", type=int, default=None, help="frames per clip in the config (default 32)")
    parser.add_argument("--fps", type=float, default=None, help="frame rate clips are sampled at (default 10)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def read_vocab(path: Path, rows: int):
    """The word list of the table: one word per row; rows 0/1 become ``<pad>``/``<unk>``."""
    from mmv.tokenizer import PAD, UNK, Vocabulary, read_word_list

    words = read_word_list(path)
    if len(words) != rows:
        raise ValueError(f"{path}: {len(words)} words, but the word table has {rows} rows (one word per row)")
    try:
        return Vocabulary([PAD, UNK, *words[2:]])
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def convert(args: argparse.Namespace) -> str:
    from tqdm import tqdm

    from mmv.bank.store import sha256_file
    from mmv.checkpoint import save_checkpoint
    from mmv.official.convert import convert_official, official_config
    from mmv.official.unpickle import load_official

    source = Path(args.checkpoint)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such file")
    steps = tqdm(total=4, desc="convert", unit="step", disable=args.quiet)
    steps.set_postfix_str("reading (restricted unpickler)")
    flat = load_official(source)
    steps.update()
    vocab = read_vocab(Path(args.vocab), official_config(flat).text.vocab_size) if args.vocab else None
    steps.set_postfix_str("mapping leaves")
    model, report = convert_official(flat, vocab=vocab)
    sampling = {k: getattr(args, k) for k in ("frame_size", "num_frames", "fps") if getattr(args, k) is not None}
    if sampling:  # how clips are read, not what the weights are: the backbones take any size
        model.config = dataclasses.replace(model.config, video=dataclasses.replace(model.config.video, **sampling))
        model.config.validate()
    steps.update()
    steps.set_postfix_str("fingerprinting source")
    metadata = {
        "source": {"file": source.name, "sha256": sha256_file(source), "licence": LICENCE},
        "conversion": report.to_dict(),
    }
    steps.update()
    steps.set_postfix_str("writing safetensors")
    out = save_checkpoint(model, args.out, metadata=metadata)
    steps.update()
    steps.close()
    params = sum(p.numel() for p in model.parameters())
    left = ", ".join(f"{k}: {v}" for k, v in report.left_out.items()) or "none"
    text = (
        "text: enabled (--vocab)"
        if vocab is not None
        else (
            "text: disabled until a word list is given (--vocab words.txt, one word per row of the "
            f"{model.config.text.vocab_size} x {model.config.text.word_dim} table); video and audio work"
        )
    )
    return "\n".join(
        [
            f"wrote {out} ({report.preset}: {model.config.video.backbone}, {params:,} parameters)",
            f"leaves used: {report.leaves_used} ({report.values:,} values); left out: {left}",
            *(f"folded: {f}" for f in report.folded),
            text,
            f"licence of the weights: {LICENCE}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mmv.official.unpickle import OfficialCheckpointError

    t0 = time.perf_counter()
    try:
        summary = convert(args)
    except (OfficialCheckpointError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary)
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
