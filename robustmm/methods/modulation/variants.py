"""The modulation variants and the hooks that apply them to a frozen network.

Every variant starts as the identity, so an untrained modulation reproduces the base network
exactly, and keeps one parameter set per availability pattern (non-empty modality subset),
except FiLM, whose single shared generator maps the pattern's availability mask to the
modulation:

* ``ssf``: h' = (1 + Δγ_{l,S}) ⊙ h + β_{l,S} per channel (Δγ = β = 0 at start; weight decay
  pulls towards the identity, not towards γ = 0);
* ``film``: the same form with (Δγ, β) for every layer predicted from the pattern's
  availability mask by a small MLP whose last layer starts at zero;
* ``bitfit``: a per-pattern copy of every bias, b_S = b + δ_S (δ_S = 0 at start), applied as
  h' = h + δ_S, which is exactly the layer with bias b_S;
* ``lora``: W_S = W + B_S A_S of rank r on linear and (ungrouped, non-transposed) convolution
  layers; A_S is initialised like a layer's weight, B_S at zero.

The modulation is applied by forward hooks on the base network's layers; the hooks change no
base parameter. The active pattern is set with :meth:`FeatureModulation.use` around a forward
pass; without an active pattern every hook is the identity.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustmm.methods.modulation.sites import Site

Variant = Literal["ssf", "film", "bitfit", "lora"]
VARIANTS: tuple[str, ...] = get_args(Variant)

#: attribute of a hooked base layer that points back at its modulation (a plain attribute, not
#: a submodule: the base network's state_dict stays exactly the base model's)
_SITE_ATTRIBUTE = "_robustmm_modulation_site"


class SiteModulation(nn.Module):
    """The modulation of one layer, with one parameter set per pattern."""

    def __init__(self, site: Site) -> None:
        super().__init__()
        self.site = site

    @staticmethod
    def applies_to(module: nn.Module) -> bool:
        return True

    def pattern_parameters(self, pattern: int) -> list[nn.Parameter]:
        raise NotImplementedError

    def forward(self, pattern: int, module: nn.Module, inputs: tuple[Any, ...], output: Tensor) -> Tensor:
        raise NotImplementedError


class ScaleShift(SiteModulation):
    def __init__(self, site: Site, module: nn.Module, num_patterns: int, rank: int) -> None:
        super().__init__(site)
        self.scale = nn.ParameterList([nn.Parameter(torch.zeros(site.channels)) for _ in range(num_patterns)])
        self.shift = nn.ParameterList([nn.Parameter(torch.zeros(site.channels)) for _ in range(num_patterns)])

    def pattern_parameters(self, pattern: int) -> list[nn.Parameter]:
        return [self.scale[pattern], self.shift[pattern]]

    def forward(self, pattern, module, inputs, output):
        return scale_shift(self.site, output, self.scale[pattern], self.shift[pattern])


class BiasShift(SiteModulation):
    def __init__(self, site: Site, module: nn.Module, num_patterns: int, rank: int) -> None:
        super().__init__(site)
        self.shift = nn.ParameterList([nn.Parameter(torch.zeros(site.channels)) for _ in range(num_patterns)])

    @staticmethod
    def applies_to(module: nn.Module) -> bool:
        owner = module.out_proj if isinstance(module, nn.MultiheadAttention) else module
        return isinstance(getattr(owner, "bias", None), Tensor)

    def pattern_parameters(self, pattern: int) -> list[nn.Parameter]:
        return [self.shift[pattern]]

    def forward(self, pattern, module, inputs, output):
        return (output.float() + self.site.broadcast(self.shift[pattern], output)).to(output.dtype)


class LowRank(SiteModulation):
    def __init__(self, site: Site, module: nn.Module, num_patterns: int, rank: int) -> None:
        super().__init__(site)
        if isinstance(module, nn.Linear):
            down_shape: tuple[int, ...] = (rank, module.in_features)
            out_features = module.out_features
        else:
            down_shape = (rank, module.in_channels, *module.kernel_size)
            out_features = module.out_channels
        self.down = nn.ParameterList()
        self.up = nn.ParameterList()
        for _ in range(num_patterns):
            down = torch.empty(down_shape)
            nn.init.kaiming_uniform_(down, a=math.sqrt(5))  # the default init of a linear/conv weight
            self.down.append(nn.Parameter(down))
            self.up.append(nn.Parameter(torch.zeros(out_features, rank)))

    @staticmethod
    def applies_to(module: nn.Module) -> bool:
        if isinstance(module, nn.Linear):
            return True
        return (isinstance(module, nn.modules.conv._ConvNd) and not module.transposed and module.groups == 1)

    def pattern_parameters(self, pattern: int) -> list[nn.Parameter]:
        return [self.down[pattern], self.up[pattern]]

    def forward(self, pattern, module, inputs, output):
        x = inputs[0]
        down, up = self.down[pattern], self.up[pattern]
        if isinstance(module, nn.Linear):
            delta = F.linear(F.linear(x, down), up)
        else:
            # the base convolution's stride, padding, dilation and padding mode, with A_S as kernel
            reduced = module._conv_forward(x, down.to(x.dtype), None)
            delta = F.linear(reduced.movedim(1, -1), up.to(reduced.dtype)).movedim(-1, 1)
        return output + delta.to(output.dtype)


def scale_shift(site: Site, output: Tensor, scale_delta: Tensor, shift: Tensor) -> Tensor:
    """(1 + Δγ) ⊙ h + β in float32 (small Δγ survive a bfloat16 forward), in h's dtype."""
    scaled = output.float() * site.broadcast(1.0 + scale_delta, output) + site.broadcast(shift, output)
    return scaled.to(output.dtype)


_PER_PATTERN: dict[str, type[SiteModulation]] = {"ssf": ScaleShift, "bitfit": BiasShift, "lora": LowRank}


def eligible(variant: str, module: nn.Module) -> bool:
    """Can ``variant`` modulate ``module`` (bitfit: it has a bias; lora: linear or plain conv)?"""
    return variant == "film" or _PER_PATTERN[variant].applies_to(module)


class FeatureModulation(nn.Module):
    """All modulation parameters of a network, hooked onto its layers (``sites``)."""

    def __init__(self, variant: str, sites: list[tuple[Site, nn.Module]], patterns: list[tuple[str, ...]],
                 modalities: list[str], rank: int = 4, film_hidden: int = 16) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown modulation variant {variant!r}; use one of {VARIANTS}")
        if not sites:
            raise ValueError(f"no layer to modulate with variant {variant!r}")
        self.variant = variant
        self.patterns = list(patterns)
        self.sites = {site.key: site for site, _ in sites}
        self.active: int | None = None
        self._film_vectors: dict[str, tuple[Tensor, Tensor]] = {}
        if variant == "film":
            self.sizes = [math.prod(site.channels) for site, _ in sites]
            self.generator = nn.Sequential(nn.Linear(len(modalities), film_hidden), nn.GELU(),
                                           nn.Linear(film_hidden, 2 * sum(self.sizes)))
            nn.init.zeros_(self.generator[-1].weight)  # identity at start: Δγ = β = 0 for every pattern
            nn.init.zeros_(self.generator[-1].bias)
            masks = torch.tensor([[m in p for m in modalities] for p in self.patterns], dtype=torch.float32)
            self.register_buffer("pattern_masks", masks, persistent=False)
        else:
            cls = _PER_PATTERN[variant]
            self.layers = nn.ModuleDict({site.key: cls(site, module, len(self.patterns), rank)
                                         for site, module in sites})
        for site, module in sites:
            if _SITE_ATTRIBUTE in module.__dict__:
                raise ValueError(f"layer {site.name} is already modulated; modulate a copy of the network")
            module.__dict__[_SITE_ATTRIBUTE] = (self, site.key)
            module.register_forward_hook(_modulation_hook)

    @contextmanager
    def use(self, pattern: int | None) -> Iterator[None]:
        """Modulate with the parameter set of pattern index ``pattern`` (None: the identity)."""
        self.active = pattern
        if self.variant == "film" and pattern is not None:
            out = self.generator(self.pattern_masks[pattern])
            half = out.shape[0] // 2
            scales, shifts = out[:half].split(self.sizes), out[half:].split(self.sizes)
            self._film_vectors = {key: (s.view(site.channels), b.view(site.channels))
                                  for (key, site), s, b in zip(self.sites.items(), scales, shifts)}
        try:
            yield
        finally:
            self.active = None
            self._film_vectors = {}

    def modulate(self, key: str, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> Any:
        if self.active is None:
            return output
        # attention returns (output, weights); the modulated output is the first
        features = output[0] if isinstance(output, tuple) else output
        if self.variant == "film":
            scale_delta, shift = self._film_vectors[key]
            changed = scale_shift(self.sites[key], features, scale_delta, shift)
        else:
            changed = self.layers[key](self.active, module, inputs, features)
        return (changed, *output[1:]) if isinstance(output, tuple) else changed

    def pattern_parameters(self, pattern: int) -> list[nn.Parameter]:
        """The parameters that pattern ``pattern`` uses (FiLM: the shared generator)."""
        if self.variant == "film":
            return list(self.generator.parameters())
        return [p for layer in self.layers.values() for p in layer.pattern_parameters(pattern)]

    def parameters_per_pattern(self) -> int:
        return sum(p.numel() for p in self.pattern_parameters(0))


def _modulation_hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> Any:
    modulation, key = module.__dict__[_SITE_ATTRIBUTE]
    return modulation.modulate(key, module, inputs, output)
