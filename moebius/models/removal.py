"""The official ``RemovalModel`` wrapper: LCG embedding table + denoising U-Net (paper Sec. 3.1, Fig. 1).

``forward(noisy_latents, timesteps, input_ids)`` looks the 10 LCG ids up in ``embedding_layer``
(E_LCG, B×10×3072) and runs ``diff_model`` on the 9-channel input
cat[noisy latent (4), mask (1, 1 = hole), masked-image latent (4)]. The state dict is
``embedding_layer.weight`` followed by ``diff_model.*``, as the official checkpoints store it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from moebius.errors import ModelInputError
from moebius.models.lcg import NUM_EMBEDDINGS
from moebius.models.unet import LatentUNet, UNetSpec


@dataclass
class RemovalOutput:
    """``sample``: predicted ε (B, 4, h, w); ``block_outputs``: per-block features (see ``unet``)."""

    sample: torch.Tensor
    block_outputs: list[torch.Tensor] = field(default_factory=list)


class RemovalModel(nn.Module):
    """Embedding table + ``LatentUNet``; carries the names the distillation needs (θ_F, θ_C, feature index)."""

    def __init__(self, spec: UNetSpec, name: str, preset: str, num_embeddings: int = NUM_EMBEDDINGS) -> None:
        super().__init__()
        self.embedding_layer = nn.Embedding(num_embeddings, spec.embed_dim)
        self.diff_model = LatentUNet(spec)
        self.name = name
        self.preset = preset
        self.spec = spec
        if spec.xavier_linear_init:
            self.initialize_weights()

    # -- facts the trainer and the report need --------------------------------------------------------
    @property
    def latent_size(self) -> int:
        return self.spec.latent_size

    @property
    def coarse_feature_index(self) -> int:
        """Index of the coarse (1/4 latent side) distillation feature in ``block_outputs``."""
        return self.diff_model.coarse_feature_index()

    @property
    def final_layer_param(self) -> str:
        """Full state-dict name of θ_F (paper): the final output layer's weight."""
        return f"diff_model.{self.diff_model.final_layer_param()}"

    @property
    def coarse_layer_param(self) -> str:
        """Full state-dict name of θ_C (paper): the last layer before the coarse feature."""
        return f"diff_model.{self.diff_model.coarse_layer_param()}"

    def enable_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute U-Net blocks in backward (training only) to save activation memory."""
        self.diff_model.gradient_checkpointing = enabled

    def initialize_weights(self) -> None:
        """The official student's init: xavier_uniform on every nn.Linear, zero bias."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    # -- forward -----------------------------------------------------------------------------------
    def forward(
        self, noisy_latents: torch.Tensor, timesteps: torch.Tensor | float | int, input_ids: torch.Tensor
    ) -> RemovalOutput:
        self.diff_model.check_input(noisy_latents)
        b = noisy_latents.shape[0]
        if input_ids.dtype != torch.long or input_ids.shape != (b, self.spec.num_tokens):
            raise ModelInputError(
                f"input_ids must be a long tensor of shape ({b}, {self.spec.num_tokens}), "
                f"got {input_ids.dtype} {tuple(input_ids.shape)}"
            )
        encoder_hidden_states = self.embedding_layer(input_ids)  # (B, 10, embed_dim)
        sample, block_outputs = self.diff_model(noisy_latents, timesteps, encoder_hidden_states.to(noisy_latents.dtype))
        return RemovalOutput(sample=sample, block_outputs=block_outputs)
