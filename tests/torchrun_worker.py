"""Run by tests/test_torchrun.py under torchrun (CPU, gloo): two epochs of a loader on every rank, gathered.
Arguments: the source (an image folder, tar shards or "parquet:PATH") and the output JSON file."""

import json
import os
import sys

import torch.distributed as dist

from dali_multicrop import DaliMultiCropLoader


def main() -> None:
    folder, out = sys.argv[1], sys.argv[2]  # an image folder or tar shards
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    loader = DaliMultiCropLoader(folder, crops="1x32,2x16", batch_size=2, device="cpu", seed=3)
    mine = {"rank": rank, "shard_id": loader.shard_id, "num_shards": loader.num_shards,
            "local_rank": int(os.environ["LOCAL_RANK"]), "threads": loader.num_threads, "epochs": []}
    for _ in range(2):
        indices, boxes, steps = [], [], 0
        for batch in loader:
            indices += batch.indices.tolist()
            boxes += batch.boxes.flatten(1).tolist()
            steps += 1
        mine["epochs"].append({"indices": indices, "boxes": boxes, "steps": steps})
    everyone = [None] * world
    dist.all_gather_object(everyone, mine)
    if rank == 0:
        with open(out, "w") as f:
            json.dump(everyone, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
