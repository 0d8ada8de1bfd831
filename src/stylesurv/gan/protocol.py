"""What rendering code asks of a generator, as Protocols (structural types: nothing inherits from them).

:class:`GeneratorLike` renders codes: the shape of its codes (``num_ws``, ``w_dim``), its image size and
``synthesis(ws [N, num_ws, w_dim], noise_mode="const")`` -> images [N, C, R, R] in about [-1, 1].  That is
all that rendering, editing, attribution, the face subspace and the refit studies use, so the StyleGAN2
:class:`~stylesurv.gan.networks.Generator`, :class:`~stylesurv.gan.stylespace.StyleSpaceGenerator` (whose
"W" is the style code, ``num_ws`` 1) and the tests' small stand-ins all serve.  Functions that read the
synthesis network's blocks and affine maps (``stylespace.style_layers`` and those built on it) take the
concrete Generator instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch


class SynthesisLike(Protocol):
    """ws [N, num_ws, w_dim] -> images [N, C, img_resolution, img_resolution]."""

    num_ws: int
    w_dim: int
    img_resolution: int

    def __call__(self, ws: torch.Tensor, noise_mode: str = ..., **kwargs: Any) -> torch.Tensor: ...


class GeneratorLike(Protocol):
    """A generator that renders W / W+ codes (see the module doc)."""

    num_ws: int
    w_dim: int
    img_resolution: int

    @property
    def synthesis(self) -> SynthesisLike: ...
