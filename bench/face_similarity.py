"""Same-person vs different-person cosine similarity on real photos, and the threshold mapping.

Prints: the genuine scores (one face under camera changes; the same man in another photo), the
impostor distribution over every pair of different people in the shipped photos, a Gaussian fit
of its tail, and the cosine threshold that fit gives for each false-accept level next to the
configured one.

    python bench/face_similarity.py
"""

from __future__ import annotations

import itertools
import statistics
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import FaceSettings
from face_engine.pipeline import FaceEngine
from tests import face_photos as photos

LEVELS = {"1/10k": 1e-4, "1/100k": 1e-5, "1/1M": 1e-6, "1/5M": 2e-7}


def main() -> None:
    settings = FaceSettings()
    engine = FaceEngine(settings)
    yao_img = photos.load(photos.YAO)
    yao = engine.embed_image(yao_img).embedding

    print("Genuine pairs (same person)")
    print(f"{'pair':<40} {'cosine':>7}")
    for name, img in photos.variants(yao_img).items():
        print(f"{'portrait vs ' + name:<40} {float(engine.embed_image(img).embedding @ yao):7.3f}")
    team = engine.embed_all_faces(photos.load(photos.PLAYERS))
    team_scores = sorted((float(f.embedding @ yao), f.face_px) for f in team)
    best, best_px = team_scores[-1]
    print(f"{'portrait vs same man in team photo (' + str(best_px) + ' px)':<40} {best:7.3f}")

    # Different people: every face of usable size in the shipped photos, one per person.
    people: list[tuple[str, np.ndarray]] = [("yao", yao)]
    people += [(f"team{i}", f.embedding) for i, f in enumerate(team) if float(f.embedding @ yao) < 0.5
               and f.face_px >= 30]
    people += [(f"t1-{i}", f.embedding) for i, f in enumerate(engine.embed_all_faces(photos.load(photos.GROUP)))]
    people += [(f"gdp{i}", f.embedding) for i, f in enumerate(engine.embed_all_faces(photos.load(photos.GDP)))
               if f.face_px >= 40]
    people.append(("astronaut", engine.embed_image(photos.astronaut()).embedding))
    people.append(("tom_hanks", engine.embed_aligned(photos.load(photos.TOM_HANKS_ALIGNED))))
    impostor = [float(a @ b) for (_, a), (_, b) in itertools.combinations(people, 2)]
    mean, sd = statistics.fmean(impostor), statistics.pstdev(impostor)
    q = np.quantile(impostor, [0.5, 0.99, 1.0])
    print(f"\nImpostor pairs (different people): {len(people)} people, {len(impostor)} pairs")
    print(f"mean {mean:.3f}  sd {sd:.3f}  median {q[0]:.3f}  p99 {q[1]:.3f}  max {q[2]:.3f}")

    print("\nThreshold per false-accept level (Gaussian tail of the impostor scores above)")
    print(f"{'level':<8} {'FAR':>8} {'fit: mean + z*sd':>17} {'configured':>11} {'genuine pairs passing':>22}")
    genuine = [float(engine.embed_image(img).embedding @ yao) for img in photos.variants(yao_img).values()] + [best]
    for level, far in LEVELS.items():
        z = NormalDist().inv_cdf(1 - far)
        configured = settings.thresholds[level]
        passing = sum(g >= configured for g in genuine)
        print(f"{level:<8} {far:8.0e} {mean + z * sd:17.3f} {configured:11.2f} {passing:>15}/{len(genuine)}")


if __name__ == "__main__":
    main()
