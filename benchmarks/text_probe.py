"""Does a base model's frozen text encoder already tell the catalog's groups apart? Prints JSON.

Prompt-following is measured on images drawn from held-out captions. When it is low, either the
prompt's embedding does not say what the caption means, or the UNet does not draw what the embedding
says. This asks the first question of a trained pipeline's own text encoder, without any image: each
held-out caption's group is voted by its ``k`` nearest training captions (cosine, on the encoder's
end-of-text hidden state and on the mean of its token states), and the vote's balanced accuracy is
set beside the image evaluator's on real held-out renditions. A text side near that ceiling puts
the gap in the UNet.

    python benchmarks/quality.py --presets quality          # trains and exports runs/quality/pipeline
    python benchmarks/text_probe.py --pipeline var/bench-quality/runs/quality/pipeline
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import torch

from benchmarks.quality import labelled_images, prepare_snapshots
from benchmarks.reporting import publish
from training.pipelines import load_pipeline
from training.quality import balanced_accuracy, round_floats

NEIGHBOURS = (1, 5, 20)


@torch.no_grad()
def caption_embeddings(pipeline, captions: list[str], batch: int = 256) -> dict[str, np.ndarray]:
    """Unit-length embeddings of ``captions``: the end-of-text token's hidden state and the token mean."""
    tokenizer, encoder = pipeline.tokenizer, pipeline.text_encoder
    end_states, mean_states = [], []
    for start in range(0, len(captions), batch):
        tokens = tokenizer([c.lower().strip() for c in captions[start:start + batch]], padding="longest",
                           truncation=True, max_length=tokenizer.model_max_length, return_tensors="pt")
        hidden = encoder(tokens.input_ids, attention_mask=tokens.attention_mask)[0].float()
        end = (tokens.input_ids == tokenizer.eos_token_id).int().argmax(dim=-1)
        end_states.append(hidden[torch.arange(len(end)), end])
        mask = tokens.attention_mask.unsqueeze(-1).float()
        mean_states.append((hidden * mask).sum(1) / mask.sum(1))
    unit = lambda parts: torch.nn.functional.normalize(torch.cat(parts), dim=-1).numpy()
    return {"end_token": unit(end_states), "token_mean": unit(mean_states)}


def neighbour_vote(queries: np.ndarray, reference: np.ndarray, labels: np.ndarray, k: int, classes: int) -> np.ndarray:
    """Each query's most frequent label among its ``k`` most similar reference rows (ties: the nearer label)."""
    nearest = np.argsort(-(queries @ reference.T), axis=1)[:, :k]
    votes = np.zeros((len(queries), classes))
    for rank in range(k):
        np.add.at(votes, (np.arange(len(queries)), labels[nearest[:, rank]]), 1.0 + 1e-3 * (k - rank))
    return votes.argmax(axis=1)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", type=Path, required=True, help="an exported base pipeline folder")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench-quality",
                        help="shared with benchmarks/quality.py: the same training and held-out snapshots")
    parser.add_argument("--catalog", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "text_probe.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args.pipeline = args.pipeline.resolve()
    if not (args.pipeline / "model_index.json").is_file():
        raise SystemExit(f"{args.pipeline} is not an exported pipeline (no model_index.json)")

    snapshots = prepare_snapshots(args.work, args.catalog)
    training = labelled_images(snapshots["training"]["items"])
    heldout = labelled_images(snapshots["evaluation"]["items"])
    groups = sorted(set(training.groups))
    train_labels = np.array([groups.index(g) for g in training.groups])
    truth = np.array([groups.index(g) if g in groups else -1 for g in heldout.groups])
    pipeline = load_pipeline(args.pipeline, device="cpu")
    reference = caption_embeddings(pipeline, list(training.captions))
    queries = caption_embeddings(pipeline, list(heldout.captions))

    results = {}
    for pooling in reference:
        for k in NEIGHBOURS:
            predicted = neighbour_vote(queries[pooling], reference[pooling], train_labels, k, len(groups))
            results[f"{pooling}@k{k}"] = {"balanced_acc": balanced_accuracy(predicted, truth),
                                          "accuracy": float((predicted == truth).mean())}
    report = round_floats({
        "benchmark": "text_probe",
        "pipeline": str(args.pipeline.relative_to(ROOT)) if args.pipeline.is_relative_to(ROOT) else str(args.pipeline),
        "heldout_captions": len(heldout), "training_captions": len(training), "groups": len(groups),
        "chance_balanced": 1 / len(groups),
        "caption_vote": results,
        "best": max(results, key=lambda name: results[name]["balanced_acc"]),
        "notes": "group of each held-out caption voted by its nearest training captions in the pipeline's frozen "
                 "text encoder; compare with real_balanced_acc (the image evaluator on real held-out renditions) "
                 "and gen_balanced_acc of the same pipeline in benchmarks/results/quality_cpu.json",
    })
    return publish(report, args.out)


if __name__ == "__main__":
    main()
