"""Multi-frame self-attention for a stock diffusers UNet.

RollingDepth turns a single-image depth UNet into a snippet model without new weights: in every self-attention the
tokens of the ``L`` frames of a snippet are flattened into one sequence, ``(b L) n c -> b (L n) c``, attended
jointly and split back. Cross-attention to the (empty) prompt is unchanged. The official code needed a forked
diffusers for this; here it is a drop-in attention processor, so the stock ``UNet2DConditionModel`` and SDPA are
used as they are.

The frame count travels with the UNet call: ``unet(..., cross_attention_kwargs={"num_frames": L})``. diffusers
hands every key of ``cross_attention_kwargs`` to each ``Attention`` module, which forwards only the keys named in its
processor's ``__call__`` signature and logs a warning for the others on every call; ``num_frames`` is therefore an
explicit parameter here (never ``**kwargs``), so nothing is dropped and nothing is logged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention


class MultiFrameAttnProcessor:
    """SDPA attention that attends jointly over the frames of a snippet in self-attention.

    With ``num_frames=1`` (the default) it computes exactly what diffusers' ``AttnProcessor2_0`` computes, step for
    step: spatial norm, 4-D inputs, group norm, cross norm, q/k norms, output projection, residual connection and
    output rescaling. Like the stock processor it leaves the softmax scale to SDPA (``1/sqrt(head_dim)``), which is
    what every attention of ``UNet2DConditionModel`` uses.

    The batch must hold the frames of each snippet consecutively: ``[(B*L), ...]``.
    """

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        num_frames: int = 1,
    ) -> torch.Tensor:
        """Attention of one ``Attention`` module; joint over ``num_frames`` frames when it is self-attention.

        Parameters
        ----------
        attn : Attention
            The module whose projections and norms are used.
        hidden_states : torch.Tensor
            ``[B*L, N, C]`` tokens, or ``[B*L, C, H, W]`` feature maps (attention blocks of the UNet's resnets).
        encoder_hidden_states : torch.Tensor, optional
            Context for cross-attention; ``None`` means self-attention, the only kind that is made multi-frame.
        attention_mask : torch.Tensor, optional
            Additive mask as the stock processor takes it; only supported per frame (``num_frames=1`` or
            cross-attention), since a joint mask over several frames has no meaning in a diffusers UNet call.
        temb : torch.Tensor, optional
            Time embedding for a spatial norm (not used by ``UNet2DConditionModel``, kept for parity).
        num_frames : int
            Frames per snippet ``L``; consecutive batch items ``[k*L, (k+1)*L)`` form snippet ``k``.

        Returns
        -------
        torch.Tensor
            Same shape as ``hidden_states``.
        """
        frames = num_frames if encoder_hidden_states is None else 1
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)

        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, tokens, _ = hidden_states.shape
        check_frames(batch_size, frames)

        if attention_mask is not None:
            if frames > 1:
                raise ValueError("attention masks are not supported in multi-frame self-attention")
            context_length = (hidden_states if encoder_hidden_states is None else encoder_hidden_states).shape[1]
            attention_mask = attn.prepare_attention_mask(attention_mask, context_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])

        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query, key, value, head_dim = _joint_projections(attn, hidden_states, encoder_hidden_states, frames)
        hidden_states = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )
        # b h (L n) d -> (b L) n (h d): back to one item per frame.
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, tokens, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)

        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)

        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


def _joint_projections(attn, hidden_states, encoder_hidden_states, frames: int):
    """Query, key and value ``[b, heads, L*n, head_dim]`` of ``[(b L), n, C]`` tokens, and the head size."""
    batch_size = hidden_states.shape[0]
    query = attn.to_q(hidden_states)
    if encoder_hidden_states is None:
        encoder_hidden_states = hidden_states
    elif attn.norm_cross:
        encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
    key = attn.to_k(encoder_hidden_states)
    value = attn.to_v(encoder_hidden_states)

    head_dim = key.shape[-1] // attn.heads
    # (b L) n (h d) -> b h (L n) d: the frames of a snippet become one token sequence.
    query, key, value = (
        x.reshape(batch_size // frames, -1, attn.heads, head_dim).transpose(1, 2) for x in (query, key, value)
    )
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    return query, key, value, head_dim


def check_frames(batch_size: int, num_frames: int) -> None:
    """Fail loudly on a frame count that would silently mix frames of different snippets."""
    if not isinstance(num_frames, int) or isinstance(num_frames, bool) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
    if batch_size % num_frames:
        raise ValueError(f"batch of {batch_size} is not a whole number of {num_frames}-frame snippets")


def enable_multi_frame_attention(unet: torch.nn.Module) -> None:
    """Install :class:`MultiFrameAttnProcessor` on every attention module of ``unet`` (in place).

    Without ``num_frames`` in ``cross_attention_kwargs`` the UNet then behaves exactly like the stock one, so the
    same model serves single images and snippets.
    """
    unet.set_attn_processor(MultiFrameAttnProcessor())
