"""Provenance: content hashes, perceptual hashes, and (later) Merkle manifests, C2PA and watermarks."""
