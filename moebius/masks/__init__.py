"""Mask protocols of the Moebius benchmarks (MAT, CoModGAN / MI-GAN, LaMa, Places2 40–50 %).

Source: docs/mask_protocols.md; the authors' published evaluation masks are imported as a
stored set by ``official.py``. Convention: in memory a mask is bool, True = hole; on disk
a uint8 PNG, 255 = hole, 0 = known (``polarity.py``). Each mask is drawn from its own generator
seeded from (protocol, version, seed, image id) (``moebius/seeding.py``; a documented departure from the
reference code's global NumPy RNG).
"""

from moebius.errors import MaskError
from moebius.masks.generate import generate_mask, resize_nearest, sample_training_mask
from moebius.masks.load import MaskSetInfo, mask_set_settings, read_mask, read_mask_set
from moebius.masks.official import import_official_masks, official_dir
from moebius.masks.polarity import HOLE_255, KNOWN_255, POLARITIES
from moebius.masks.registry import Protocol, get_protocol, list_protocols
from moebius.masks.stats import hole_ratios, mask_stats, plot_hole_histograms, set_stats, summarise_ratios
from moebius.masks.store import write_mask_set
from moebius.seeding import mask_rng

__all__ = [
    "HOLE_255", "KNOWN_255", "POLARITIES", "MaskError", "MaskSetInfo", "Protocol", "generate_mask",
    "get_protocol", "hole_ratios", "import_official_masks", "list_protocols", "mask_rng", "mask_set_settings",
    "mask_stats", "official_dir", "plot_hole_histograms",
    "read_mask", "read_mask_set", "resize_nearest", "sample_training_mask", "set_stats",
    "summarise_ratios", "write_mask_set",
]
