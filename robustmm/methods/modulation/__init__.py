"""Feature-modulation adaptation for missing modalities (``- name: modulation``).

* :mod:`.sites`: which layers of a network are modulated (found by walking its module tree);
* :mod:`.variants`: ssf, film, bitfit and lora, applied by forward hooks;
* :mod:`.network`: :class:`ModulatedNetwork`, the frozen base with per-sample pattern selection;
* :mod:`.method`: the registered method (base network, training, model selection, report).
"""

from robustmm.methods.modulation.method import Modulation, ModulationOptions
from robustmm.methods.modulation.network import ModulatedNetwork
from robustmm.methods.modulation.sites import Site, find_sites
from robustmm.methods.modulation.variants import FeatureModulation

__all__ = ["FeatureModulation", "ModulatedNetwork", "Modulation", "ModulationOptions", "Site", "find_sites"]
