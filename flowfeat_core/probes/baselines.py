"""The feature maps the evaluation compares, all from one encoder pass per image.

Following the paper's protocol, FlowFeat is compared with what the same frozen encoder gives
without distillation: its coarse features upsampled bilinearly, the hypercolumn of all its
levels, and an untrained decoder; ``hypercolumn+flowfeat`` (FlowFeat appended as one more
L2-normalised level) asks whether FlowFeat adds to what the encoder already has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from flowfeat_core.inference.predictor import Predictor
from flowfeat_core.models.flowfeat import FlowFeat

FEATURE_SETS = ("bilinear", "hypercolumn", "untrained", "flowfeat", "hypercolumn+flowfeat")


@dataclass
class FeatureSets:
    """Computes every map of :data:`FEATURE_SETS` for an image (float32, CPU, 1 x C x H x W)."""

    predictor: Predictor
    untrained: FlowFeat

    @classmethod
    def for_predictor(cls, predictor: Predictor, seed: int = 0) -> FeatureSets:
        """Feature sets of ``predictor``'s model, the untrained decoder initialised from ``seed``."""
        return cls(predictor, predictor.model.untrained_twin(seed))

    @torch.inference_mode()
    def maps(self, rgb: np.ndarray) -> dict[str, torch.Tensor]:
        """All feature maps of one RGB uint8 image at the predictor's network size."""
        model = self.predictor.model
        images = self.predictor.preprocess(rgb)
        image_hw = tuple(images.shape[-2:])
        multiscale, coarse = model.encode(images)
        # at a reduced precision FlowFeat runs as the predictor serves it; the baselines stay fp32
        flowfeat = (model.decode(multiscale, images) if self.predictor.precision == "fp32"
                    else self.predictor.run(images)[1]).float().cpu()
        hypercolumn = model.hypercolumn(multiscale, image_hw).float().cpu()
        return {
            "bilinear": F.interpolate(
                coarse.float(), size=image_hw, mode="bilinear", align_corners=False
            ).cpu(),
            "hypercolumn": hypercolumn,
            "untrained": model.decode(multiscale, images, self.untrained.decoder).float().cpu(),
            "flowfeat": flowfeat,
            # FlowFeat joins as one more level, L2-normalised like the others: raw, its norm
            # (sqrt(128) after LayerNorm) would swamp the unit-length levels in cosine affinities.
            "hypercolumn+flowfeat": torch.cat([hypercolumn, F.normalize(flowfeat, dim=1)], dim=1),
        }
