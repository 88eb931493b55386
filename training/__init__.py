"""Diffusion training and inference: trains text-to-image models only on the examples it is handed.

Free of database, queue and web code on purpose: a worker (``worker.jobs``) supplies the examples
and the hooks (license gate, progress, cancel), and the same code runs on a bare GPU box for
benchmarks. ``engine`` is the training loop; ``pipelines`` is the one place that builds and loads
diffusers pipelines and knows their quirks; ``inference`` renders with loaded pipelines;
``attribution_features`` takes the influence gradients ``provenance.influence`` indexes.
"""

import os


def quiet_library_logs() -> None:
    """Keep diffusers' and transformers' import-time chatter (optional torchvision backends, the IF
    safety-checker notice) out of operators' logs: call before either library is imported.
    ``pipelines.expected_pipeline_warnings_silenced`` handles what they log while loading."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
