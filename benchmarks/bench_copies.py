"""How much a ``--copies`` build recovers when every original is dead (BENCHMARKS.md, "Public copies").

Serves the registered copies found in ../shared/realdata on a loopback imitation of the raw-file host (every
original host dead: the only mirror is the loopback site, plus one that does not resolve), then runs the real
``covidx-us build --copies --no-original --allow-missing`` over the official catalogue and counts, from the
exported build record, the videos recovered from copies and how each was processed (mapped / auto).

    python benchmarks/bench_copies.py --work /tmp/bench-copies [--max-frames 8] [--config frames-4class]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def main() -> int:
    from processing.cli import main as cli
    from processing.demo.testsite import LoopbackSite
    from processing.release.copies import load_copies

    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--max-frames", type=int, default=8)
    parser.add_argument("--config", default="frames-4class")
    args = parser.parse_args()
    realdata = SHARED / "realdata"
    with open(realdata / "MANIFEST.csv", newline="") as handle:
        on_disk = {(r["origin_repo"], r["origin_path"]): realdata / r["file"] for r in csv.DictReader(handle)}
    registry = load_copies()
    served = set()
    with LoopbackSite() as site:
        for rows in registry.values():
            for copy in rows:
                if (copy.repository, copy.path) in on_disk:
                    site.add_file(copy.url, on_disk[(copy.repository, copy.path)])
                    served.add(copy.video_id)
        start = time.perf_counter()
        code = cli(["build", "--config", args.config, "--release-dir", str(SHARED / "reference" / "covidx_us"),
                    "--no-original", "--mirror", site.prefix, "--mirror", "http://covidx-dead-host.invalid/",
                    "--copies", "--allow-missing", "--delay", "0", "--max-frames", str(args.max_frames),
                    "--cache-dir", str(args.work / "cache"), "--output", str(args.work / "export")])
        seconds = time.perf_counter() - start
    record = json.loads((args.work / "export" / "build_record.json").read_text())
    built = [v for v in record["videos"] if v["record"] is not None]
    copies = [v for v in built if v["download"]["status"] == "copy"]
    plans = Counter((v["plan"] or {}).get("copy") for v in copies)
    failed = [v["id"] for v in record["videos"] if v["id"] in served and v["record"] is None]
    print(json.dumps({"exit": code, "seconds": round(seconds, 1), "registry_videos": len(registry),
                      "registry_butterfly": sum("_butterfly_" in v for v in registry),
                      "copies_served": len(served), "recovered_from_copies": len(copies),
                      "recovered_butterfly": sum(v["source"] == "butterfly" for v in copies),
                      "processing": dict(plans), "served_but_not_built": failed,
                      "catalogue_videos_in_config": len(record["videos"])}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
