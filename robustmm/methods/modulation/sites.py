"""Where modulation goes: the layers of a network, found by walking its module tree.

A *site* is one layer whose output is modulated. Sites are found generically, by layer type,
inside the named parts of the network (``targets``), so the same code adapts any robustmm
network (MultimodalNet's per-modality encoders and fusion block, a segmentation network's
encoders and per-scale fusions) without knowing its architecture. A target is a top-level part
(``trunk``) or a shell-style pattern over dotted module paths (``encoders.*.proj``: the output
layer of every encoder):

* ``linear``: :class:`torch.nn.Linear`, modulated over its last (feature) dimension;
* ``conv``: 1-D/2-D/3-D convolutions, transposed ones included, over the channel dimension (1);
* ``norm``: batch, instance and group norms over dimension 1; layer and RMS norms over their
  trailing normalized shape;
* ``attention``: :class:`torch.nn.MultiheadAttention`, over the last dimension of the attention
  output. Its inner ``out_proj`` is never a site of its own: the attention calls it through
  ``F.multi_head_attention_forward``, so a hook on it would never run.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal, get_args

from torch import Tensor, nn

LayerKind = Literal["linear", "conv", "norm", "attention"]
LAYER_KINDS: tuple[str, ...] = get_args(LayerKind)
#: network parts modulated when neither the study nor robustmm/presets/methods/modulation.yaml names any:
#: where the modalities meet and everything after it, i.e. the fusion block(s) and the shared
#: trunk of MultimodalNet (``fusion``, ``trunk``) and the per-scale fusions and decoder of the
#: segmentation networks (``fusions``, ``decoder``). A missing modality changes the fused
#: features; the trunk is where a per-pattern change can compensate for it (with concat fusion
#: the fusion block has no layer, so modulating only the encoders never touches the trunk).
DEFAULT_TARGETS: tuple[str, ...] = ("fusion", "fusions", "trunk", "decoder")

_CHANNELS_FIRST_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm)
_TRAILING_NORMS = (nn.LayerNorm, nn.RMSNorm)


@dataclass(frozen=True)
class Site:
    """One modulated layer: its dotted path in the network and the shape of a per-channel vector."""

    name: str
    kind: LayerKind
    #: shape of one per-channel modulation vector (the trailing normalized shape of a layer norm)
    channels: tuple[int, ...]
    #: True: the channels are dimension 1 of the output (convolutions, batch/instance/group
    #: norms); False: they are the trailing dimensions (linear, layer norm, attention)
    channels_first: bool

    @property
    def key(self) -> str:
        """The name as a ModuleDict key (which may not contain dots)."""
        return self.name.replace(".", "/")

    def broadcast(self, vector: Tensor, output: Tensor) -> Tensor:
        """``vector`` (shape ``channels``) shaped to broadcast against ``output``."""
        if self.channels_first:
            return vector.view(1, -1, *([1] * (output.dim() - 2)))
        return vector


def layer_kind(module: nn.Module) -> LayerKind | None:
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(module, _CHANNELS_FIRST_NORMS + _TRAILING_NORMS):
        return "norm"
    if isinstance(module, nn.MultiheadAttention):
        return "attention"
    return None


def describe(name: str, module: nn.Module) -> Site:
    kind = layer_kind(module)
    if kind == "linear":
        return Site(name, kind, (module.out_features,), channels_first=False)
    if kind == "conv":
        return Site(name, kind, (module.out_channels,), channels_first=True)
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return Site(name, "norm", (module.num_features,), channels_first=True)
    if isinstance(module, nn.GroupNorm):
        return Site(name, "norm", (module.num_channels,), channels_first=True)
    if isinstance(module, _TRAILING_NORMS):
        return Site(name, "norm", tuple(module.normalized_shape), channels_first=False)
    if kind == "attention":
        return Site(name, kind, (module.embed_dim,), channels_first=False)
    raise TypeError(f"{name}: {type(module).__name__} is not a layer that can be modulated "
                    f"(kinds: {LAYER_KINDS})")


def _is_pattern(target: str) -> bool:
    return any(ch in target for ch in ".*?[")


def target_modules(net: nn.Module, target: str) -> list[tuple[str, nn.Module]]:
    """The modules a target names: a top-level part, or every module whose dotted path matches
    the pattern (outermost matches only, so a pattern never names a layer twice)."""
    if not _is_pattern(target):
        part = dict(net.named_children()).get(target)
        return [] if part is None else [(target, part)]
    matched: list[tuple[str, nn.Module]] = []
    for name, module in net.named_modules():
        if name and fnmatchcase(name, target) and not any(name.startswith(m + ".") for m, _ in matched):
            matched.append((name, module))
    return matched


def resolve_targets(net: nn.Module, targets: list[str] | None, defaults: tuple[str, ...] | list[str] | None = None
                    ) -> list[str]:
    """The parts of ``net`` to modulate; ``None`` means those of ``defaults`` (else
    :data:`DEFAULT_TARGETS`) that it has. A target the study names must name something."""
    children = [name for name, _ in net.named_children()]
    if targets is None:
        defaults = DEFAULT_TARGETS if defaults is None else tuple(defaults)
        found = [t for t in defaults if target_modules(net, t)]
        if not found:
            raise ValueError(f"{type(net).__name__} has none of the default modulation targets "
                             f"{list(defaults)}; set 'targets' to some of its parts {children}")
        return found
    unknown = [t for t in targets if not target_modules(net, t)]
    if unknown:
        raise ValueError(f"targets {unknown} name no part of {type(net).__name__}; its parts are {children} "
                         f"(or give a pattern over dotted module paths, e.g. 'encoders.*.proj')")
    return list(targets)


def find_sites(net: nn.Module, targets: list[str], kinds: list[str]) -> list[tuple[Site, nn.Module]]:
    """Every layer of a kind in ``kinds`` inside the parts ``targets`` of ``net``, in module
    order; a layer shared by several parts (e.g. one encoder for two modalities) appears once."""
    seen: set[int] = set()
    attention_prefixes: list[str] = []
    sites: list[tuple[Site, nn.Module]] = []
    for target in targets:
        for root, part in target_modules(net, target):
            for name, module in part.named_modules(prefix=root):
                if any(name.startswith(prefix + ".") for prefix in attention_prefixes):
                    continue
                if isinstance(module, nn.MultiheadAttention):
                    attention_prefixes.append(name)
                kind = layer_kind(module)
                if kind is None or kind not in kinds or id(module) in seen:
                    continue
                seen.add(id(module))
                sites.append((describe(name, module), module))
    return sites
