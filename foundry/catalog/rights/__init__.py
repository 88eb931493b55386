"""Rights metadata embedded in image bytes (XMP and IPTC IIM), read so onboarding can honour it.

Licensed images often carry their own statement of who made them, who owns them and whether they
may be mined for AI training (the PLUS "Data Mining" property). ``readers`` finds that metadata in
the container formats the foundry accepts; ``xmp`` parses it and reduces it to one small,
JSON-storable :class:`EmbeddedRights` record. Whether those rights allow training is decided by
:func:`foundry.licensing.policy.judge_embedded_rights`, the one rule every path asks.
"""

from foundry.catalog.rights.readers import MAX_SVG_BYTES, SUPPORTED_FORMATS, read_embedded_rights
from foundry.catalog.rights.xmp import (
    ADVISORY_WARNINGS,
    CC_NS,
    DC_NS,
    LEGACY_CC_NS,
    MAX_IPTC_BYTES,
    MAX_METADATA_BLOCKS,
    MAX_METADATA_BYTES,
    MAX_XMP_PACKET_BYTES,
    PLUS_NS,
    RDF_NS,
    XMP_RIGHTS_NS,
    EmbeddedRights,
)
from foundry.licensing.policy import DATA_MINING_CODES, PLUS_VOCAB_PREFIX, normalise_data_mining

__all__ = [
    "ADVISORY_WARNINGS", "CC_NS", "DATA_MINING_CODES", "DC_NS", "LEGACY_CC_NS", "MAX_IPTC_BYTES",
    "MAX_METADATA_BLOCKS", "MAX_METADATA_BYTES", "MAX_SVG_BYTES", "MAX_XMP_PACKET_BYTES", "PLUS_NS", "PLUS_VOCAB_PREFIX", "RDF_NS",
    "SUPPORTED_FORMATS", "XMP_RIGHTS_NS", "EmbeddedRights", "normalise_data_mining", "read_embedded_rights",
]
