"""The latent denoising U-Net shared by the student, the teacher and every Table 2 variant (paper Sec. 3.1-3.2).

One class, ``LatentUNet``, built from a frozen ``UNetSpec``: the level widths, which levels carry
transformer blocks, whether there is a mid block, and the four Table 2 switches (self-attention,
cross-attention, FFN, conv). Its module tree and parameter names follow diffusers'
``UNet2DConditionModel`` as the official code builds it (``conv_in``, ``time_embedding``,
``encoder_hid_proj``, ``down_blocks``, ``up_blocks``, ``mid_block``, ``conv_norm_out``, ``conv_out``),
so ``state_dict()`` has the official keys, shapes and order.

The forward pass also returns ``block_outputs``: the output of every down block (after its
downsampler), of the mid block (if any) and of every up block (after its upsampler), which the
distillation (Sec. 3.3) reads by index.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from moebius.errors import ModelConfigError, ModelInputError
from moebius.models.blocks import (
    ConvKind,
    CrossAttn,
    Downsample,
    FFNKind,
    ResnetBlock,
    SelfAttention,
    SpatialTransformer,
    Upsample,
    group_norm,
    make_conv3x3,
)
from moebius.models.timestep import TimestepEmbedding, sinusoidal_embedding


def _resnet(block: nn.Module, resnet: nn.Module, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
    """``resnet(x, temb)``, recomputed in backward when the block's ``gradient_checkpointing`` is on.

    As the official diffusers blocks (``_gradient_checkpointing_func(resnet, hidden_states, temb)``):
    only the residual blocks are checkpointed, not the transformers, and only while grad is enabled.
    Each backward pass that reaches a checkpointed block recomputes it, so a train-mode BatchNorm in it
    updates its running statistics once more (the official step: 5 times per step in up blocks, 2 in
    down blocks, once outside residual blocks; tests/train/test_train_checkpointing.py).
    """
    if block.gradient_checkpointing and torch.is_grad_enabled():
        return checkpoint(resnet, x, temb, use_reentrant=False)
    return resnet(x, temb)


@dataclass(frozen=True)
class UNetSpec:
    """Everything that fixes a U-Net's architecture (and so its state-dict layout)."""

    block_out_channels: tuple[int, ...]  # width per level; a level halves the grid after its down block
    down_attention: tuple[bool, ...]  # CrossAttnDownBlock2D (True) or DownBlock2D (False), per level
    up_attention: tuple[bool, ...]  # per up block, coarsest first
    mid_block: bool  # UNetMidBlock2DCrossAttn at the bottom (teacher) or none (student, 3-level variants)
    self_attention: SelfAttention = "LocalLambda"  # Table 2 switch: GLA | LocalLambda
    cross_attention: CrossAttn = "InteractiveLambda"  # Table 2 switch: CA | InteractiveLambda
    ffn: FFNKind = "MixFFN"  # Table 2 switch: FFN (GEGLU) | MixFFN
    conv: ConvKind = "DWConv"  # Table 2 switch: Conv | DWConv (resnets, conv_in, conv_out)
    latent_size: int = 64  # 512 px / VAE factor 8; Interactive-λ tables are sized for it
    layers_per_block: int = 2  # resnets per down block (up blocks get one more), as diffusers
    in_channels: int = 9  # noisy latent (4) + mask (1) + masked-image latent (4)
    out_channels: int = 4  # predicted noise ε
    embed_dim: int = 3072  # LCG embedding width (encoder_hid_proj input)
    context_dim: int = 768  # cross-attention width after encoder_hid_proj
    num_tokens: int = 10  # LCG tokens per sequence (Interactive-λ needs exactly this many)
    heads: int = 8  # heads of every attention / λ layer (d_k = C / 8)
    norm_groups: int = 32  # GroupNorm groups everywhere
    lambda_r: int = 15  # Local-λ window (paper Sec. 4.1: r = 15)
    mix_ffn_ratio: float = 2.5  # Mix-FFN hidden ratio (SANA GLUMBConv default)
    xavier_linear_init: bool = True  # official student: xavier_uniform on every nn.Linear, zero bias

    def __post_init__(self) -> None:
        n = len(self.block_out_channels)
        if n < 1 or len(self.down_attention) != n or len(self.up_attention) != n:
            raise ModelConfigError(
                f"UNetSpec: block_out_channels, down_attention and up_attention need the same length, "
                f"got {n}, {len(self.down_attention)}, {len(self.up_attention)}"
            )
        if self.latent_size % (2 ** (n - 1)):
            raise ModelConfigError(f"UNetSpec: latent_size {self.latent_size} is not divisible by 2^{n - 1}")

    @property
    def num_levels(self) -> int:
        return len(self.block_out_channels)

    def replace(self, **changes: object) -> "UNetSpec":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def grid(self, level: int) -> int:
        """Side of the latent grid at ``level`` (0 = full resolution)."""
        return self.latent_size // 2**level


class DownBlock(nn.Module):
    """``CrossAttnDownBlock2D`` (with attentions) or ``DownBlock2D``: resnet [+ transformer] × n, downsample."""

    def __init__(self, spec: UNetSpec, level: int, in_channels: int, out_channels: int, temb: int) -> None:
        super().__init__()
        has_attn, add_down = spec.down_attention[level], level < spec.num_levels - 1
        if has_attn:  # registered before resnets, as diffusers does: this fixes the key order
            self.attentions = nn.ModuleList(
                [_transformer(spec, out_channels, spec.grid(level)) for _ in range(spec.layers_per_block)]
            )
        self.resnets = nn.ModuleList(
            [
                ResnetBlock(in_channels if i == 0 else out_channels, out_channels, temb, spec.conv, spec.norm_groups)
                for i in range(spec.layers_per_block)
            ]
        )
        self.downsamplers = nn.ModuleList([Downsample(out_channels)]) if add_down else None
        self.has_attn = has_attn
        self.gradient_checkpointing = False  # set through LatentUNet.gradient_checkpointing

    def forward(
        self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        skips: tuple[torch.Tensor, ...] = ()
        for i, resnet in enumerate(self.resnets):
            x = _resnet(self, resnet, x, temb)  # (B, C, H, W)
            if self.has_attn:
                x = self.attentions[i](x, context)
            skips += (x,)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)  # (B, C, H/2, W/2)
            skips += (x,)
        return x, skips

    def last_layer_param(self) -> str:
        """Relative name of the weight of the last layer this block runs (θ before its output)."""
        return _last_layer_param(self, "downsamplers")


class MidBlock(nn.Module):
    """``UNetMidBlock2DCrossAttn``: resnet, then (transformer, resnet)."""

    def __init__(self, spec: UNetSpec, channels: int, temb: int) -> None:
        super().__init__()
        self.attentions = nn.ModuleList([_transformer(spec, channels, spec.grid(spec.num_levels - 1))])
        self.resnets = nn.ModuleList(
            [ResnetBlock(channels, channels, temb, spec.conv, spec.norm_groups) for _ in range(2)]
        )
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor, temb: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = _resnet(self, self.resnets[0], x, temb)
        for attn, resnet in zip(self.attentions, self.resnets[1:]):
            x = _resnet(self, resnet, attn(x, context), temb)
        return x  # (B, C, H, W)


class UpBlock(nn.Module):
    """``CrossAttnUpBlock2D`` or ``UpBlock2D``: (concat skip, resnet [+ transformer]) × (n+1), upsample."""

    def __init__(
        self, spec: UNetSpec, index: int, prev_channels: int, out_channels: int, skip_in_channels: int, temb: int
    ) -> None:
        super().__init__()
        level = spec.num_levels - 1 - index
        has_attn, add_up = spec.up_attention[index], index < spec.num_levels - 1
        n = spec.layers_per_block + 1
        if has_attn:
            self.attentions = nn.ModuleList([_transformer(spec, out_channels, spec.grid(level)) for _ in range(n)])
        resnets = []
        for i in range(n):
            skip = skip_in_channels if i == n - 1 else out_channels
            cin = prev_channels if i == 0 else out_channels
            resnets.append(ResnetBlock(cin + skip, out_channels, temb, spec.conv, spec.norm_groups))
        self.resnets = nn.ModuleList(resnets)
        self.upsamplers = nn.ModuleList([Upsample(out_channels)]) if add_up else None
        self.has_attn = has_attn
        self.gradient_checkpointing = False

    def forward(
        self, x: torch.Tensor, skips: tuple[torch.Tensor, ...], temb: torch.Tensor, context: torch.Tensor
    ) -> torch.Tensor:
        for i, resnet in enumerate(self.resnets):
            x = torch.cat([x, skips[-1 - i]], dim=1)  # (B, C + C_skip, H, W), newest skip first
            x = _resnet(self, resnet, x, temb)
            if self.has_attn:
                x = self.attentions[i](x, context)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)  # (B, C, 2H, 2W)
        return x

    def last_layer_param(self) -> str:
        return _last_layer_param(self, "upsamplers")


def _transformer(spec: UNetSpec, channels: int, grid: int) -> SpatialTransformer:
    return SpatialTransformer(
        channels,
        groups=spec.norm_groups,
        context_dim=spec.context_dim,
        grid_size=grid,
        num_tokens=spec.num_tokens,
        self_attention=spec.self_attention,
        cross_attention=spec.cross_attention,
        ffn=spec.ffn,
        heads=spec.heads,
        lambda_r=spec.lambda_r,
        mix_ffn_ratio=spec.mix_ffn_ratio,
    )


def _last_layer_param(block: nn.Module, resampler: str) -> str:
    """A down or up block's last layer: its resampler's conv, else the last transformer's output
    projection, else the last resnet's last conv (``resampler``: "downsamplers" | "upsamplers")."""
    if getattr(block, resampler) is not None:
        return f"{resampler}.0.conv.weight"
    last = len(block.resnets) - 1
    if block.has_attn:
        return f"attentions.{last}.proj_out.weight"
    return _last_conv(f"resnets.{last}", block.resnets[last])


def _last_conv(prefix: str, resnet: ResnetBlock) -> str:
    return f"{prefix}.conv2.conv_pw.weight" if hasattr(resnet.conv2, "conv_pw") else f"{prefix}.conv2.weight"


class LatentUNet(nn.Module):
    """The ε-prediction U-Net (``diff_model``): (B, 9, h, w), t, LCG embeddings -> (B, 4, h, w) + block outputs."""

    def __init__(self, spec: UNetSpec) -> None:
        super().__init__()
        self.spec = spec
        ch = spec.block_out_channels
        temb = ch[0] * 4
        for c in ch:
            group_norm(spec.norm_groups, c, 1e-5)  # fail early, with the clear message, on bad widths
        self.conv_in = make_conv3x3(spec.conv, spec.in_channels, ch[0])
        self.time_embedding = TimestepEmbedding(ch[0], temb)
        self.encoder_hid_proj = nn.Linear(spec.embed_dim, spec.context_dim)

        self.down_blocks = nn.ModuleList()
        # registered before mid_block (as diffusers does), which puts up_blocks.* before mid_block.* keys
        self.up_blocks = nn.ModuleList()
        cin = ch[0]
        for level, cout in enumerate(ch):
            self.down_blocks.append(DownBlock(spec, level, cin, cout, temb))
            cin = cout
        self.mid_block = MidBlock(spec, ch[-1], temb) if spec.mid_block else None
        rev = tuple(reversed(ch))
        prev = rev[0]
        for i, cout in enumerate(rev):
            skip_in = rev[min(i + 1, len(rev) - 1)]
            self.up_blocks.append(UpBlock(spec, i, prev, cout, skip_in, temb))
            prev = cout
        self.conv_norm_out = group_norm(spec.norm_groups, ch[0], 1e-5)
        self.conv_out = make_conv3x3(spec.conv, ch[0], spec.out_channels)

    @property
    def gradient_checkpointing(self) -> bool:
        """Recompute every residual block in backward instead of storing its activations (``_resnet``)."""
        return any(b.gradient_checkpointing for b in self._blocks())

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, enabled: bool) -> None:
        for block in self._blocks():  # as diffusers' enable_gradient_checkpointing: on every block
            block.gradient_checkpointing = bool(enabled)

    def _blocks(self) -> list[nn.Module]:
        return [*self.down_blocks, *([self.mid_block] if self.mid_block is not None else []), *self.up_blocks]

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor | float | int, encoder_hidden_states: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b = sample.shape[0]  # sample (B, 9, h, w); encoder_hidden_states (B, m, embed_dim)
        t = torch.as_tensor(timestep, device=sample.device)
        if t.ndim == 0:
            t = t.expand(b)  # a scalar timestep is shared by the batch
        elif t.shape != (b,):
            raise ModelInputError(f"timesteps must be a scalar or shape ({b},), got {tuple(t.shape)}")
        t_feat = sinusoidal_embedding(t, self.spec.block_out_channels[0]).to(sample.dtype)  # (B, C0)
        emb = self.time_embedding(t_feat)  # (B, 4·C0)
        context = self.encoder_hid_proj(encoder_hidden_states)  # (B, m, Dc)

        x = self.conv_in(sample)  # (B, C0, h, w)
        skips: tuple[torch.Tensor, ...] = (x,)
        block_outputs: list[torch.Tensor] = []
        for block in self.down_blocks:
            x, res = block(x, emb, context)
            skips += res
            block_outputs.append(x)
        if self.mid_block is not None:
            x = self.mid_block(x, emb, context)
            block_outputs.append(x)
        for block in self.up_blocks:
            n = len(block.resnets)
            x = block(x, skips[-n:], emb, context)
            skips = skips[:-n]
            block_outputs.append(x)
        x = self.conv_out(F.silu(self.conv_norm_out(x)))  # (B, 4, h, w)
        return x, block_outputs

    def coarse_feature_index(self) -> int:
        """Index in ``block_outputs`` of the coarse distillation feature (paper Sec. 3.3).

        With a mid block (teacher) it is the first up block's output; without one (student, 3-level
        variants) the last down block's output: both sit at 1/4 of the latent side.
        """
        return len(self.down_blocks) + 1 if self.mid_block is not None else len(self.down_blocks) - 1

    def coarse_layer_param(self) -> str:
        """Name (within ``diff_model``) of the last layer that runs before the coarse feature."""
        if self.mid_block is not None:
            return f"up_blocks.0.{self.up_blocks[0].last_layer_param()}"
        last = len(self.down_blocks) - 1
        return f"down_blocks.{last}.{self.down_blocks[last].last_layer_param()}"

    def final_layer_param(self) -> str:
        """Name (within ``diff_model``) of the final output layer's weight (θ_F of the paper)."""
        return "conv_out.conv_pw.weight" if self.spec.conv == "DWConv" else "conv_out.weight"

    def check_input(self, sample: torch.Tensor) -> None:
        """Raise ``ModelInputError`` unless ``sample`` is (B, in_channels, h, w) with a usable h, w."""
        spec = self.spec
        if sample.ndim != 4 or sample.shape[1] != spec.in_channels:
            raise ModelInputError(
                f"noisy_latents must be (B, {spec.in_channels}, h, w), got {tuple(sample.shape)}"
            )
        h, w = sample.shape[-2:]
        needs_fixed = spec.cross_attention == "InteractiveLambda"
        if needs_fixed and (h, w) != (spec.latent_size, spec.latent_size):
            raise ModelInputError(
                f"this model's Interactive-λ tables need {spec.latent_size}x{spec.latent_size} latents, got {h}x{w}"
            )
        step = 2 ** (spec.num_levels - 1)
        if h % step or w % step:
            raise ModelInputError(f"latent side must be divisible by {step}, got {h}x{w}")
