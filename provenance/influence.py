"""Per-output influence: which training images shaped this output, by projected gradients.

The method follows D-TRAK (Zheng et al., ICLR 2024): a training example and an output are each
described by the gradient of a simple function of the diffusion model's prediction -- the
squared norm of the model output at K fixed timesteps with fixed noise -- with respect to a
small subset of parameters, randomly projected to a few thousand dimensions and averaged over
the timesteps. Influence is then the kernel-regularised inner product

    score(train i, output q) = phi_i^T (Phi^T Phi + lambda I)^-1 phi_q

over the whole training set Phi, then normalised per training image (``InfluenceConfig.normalisation``)
so that no image is influential for everything -- raw scores have hubs, images that sit in the top 10 of
most outputs and would collect royalties for all of them:

- ``self``: divided by the root of the image's self-influence, score(i, i) (RelatIF, Barshan et al. 2020):
  an image is credited for how much of *its own* influence goes to this output;
- ``calibrated``: standardised by the image's mean and spread of scores over a few *calibration outputs*
  (the model's own images for training captions), (score(i, q) - mean_c score(i, c)) / std_c score(i, c);
- ``centered``: every feature, of the training images and of the output, less the mean feature c of the
  calibration outputs, and the kernel built over the centred training features,

      score(i, q) = (phi_i - c)^T ((Phi - 1 c^T)^T (Phi - 1 c^T) + lambda I)^-1 (phi_q - c).

  What the gradients of all of a model's outputs share (to the model its own outputs look alike) no longer
  makes every image look influential for every output. At t = 100/500/900 it is the only normalisation
  measured whose *paid shares* predict what removing a contributor does at contributor LDS >= 0.5 with
  hubness <= 0.2 and self top-1 >= 0.9, but its per-image LDS over half-models collapses (0.07), so it is
  not the default (``benchmarks/results/attribution_cpu.json``, ``dtrak_centered_kernel``);
- ``centered_calibrated``: centred scores, each image's then divided by its spread over the calibration outputs
  (their mean there is 0 by construction). An image whose centred score is large for *every* output of the
  model -- a hub of the centred view -- is credited only for how far an output stands out of its usual range.
  As the payment view it lowered hubness (0.125 against 0.175) but its paid contributor LDS fell to 0.41 from
  the centred view's 0.55 (``benchmarks/results/attribution_cpu_payment_calibrated.json``): not the default;
- ``das``: the Diffusion Attribution Score (DAS, Lin et al., ICLR 2025) in its linearised form, as its authors
  compute it on their benchmarks: the raw score times the training image's denoising residual e_i (how far the
  model's own prediction for it misses its target, at the view's timesteps and fixed noise), divided by
  1 - h_i with h_i = phi_i^T (Phi^T Phi + lambda I)^-1 phi_i the image's leverage (the Newton step of leaving it
  out of the fit),

      score(i, q) = phi_i^T (Phi^T Phi + lambda I)^-1 phi_q * e_i / (1 - h_i).

  DAS compares the model's noise predictions with and without an image rather than losses: the parameters move
  along the image's Jacobian weighted by its residual, so an image the model already reproduces pulls no
  further. The index keeps each row's residual (``InfluenceIndex.residuals``);
- ``none``: raw scores (version 1).

Version 3 splits the two jobs a score does, because no one score does both well (``benchmarks/results/
contributor_shares_lds.json``: damping or blending trades one against the other). One feature pass takes the
gradient at every timestep of two *views* (``InfluenceConfig.views``) and averages it per view:

- the **evidence** view (``self``, t = 900) ranks the training images shown beside an output: the best
  per-image LDS, no hubs, every training image its own top match;
- the **payment** view (``centered``, t = 100/500/900) splits the output's influence pool: its shares best
  predict what removing a contributor changes (contributor LDS).

Each view has its own kernel and normalisation (``InfluenceIndex.payment``), over the same rows.

Version 4 blends the evidence view with **pixel similarity** (``InfluenceConfig.pixel_weight``): each training
image also keeps its 32 x 32 RGB thumbnail as bytes (``pixel_codes``), read as a pixel row (``pixel_row``: less
its mean, unit length), and an output's evidence score for an image is

    (1 - w) * z(gradient score) + w * z(pixel similarity),

each part standardised over the whole index for this output (its mean and spread over the rows, from the rows'
mean and covariance: no scan). Gradients and pixels carry different information: on stop 36's model pixel
nearest neighbours predicted the half-models' losses (per-image LDS) better than any gradient score, and the
blend ``w = 3/4`` beat both of its parts (``benchmarks/results/contributor_shares_payment_calibrated.json``).
It changes only which images are shown beside an output and how they rank; the pool is still split by the
payment view.

All keep the score an inner product (rows divided by a per-row scale; a calibrated query shifted by the
calibration's mean solution; a centred score is the raw rows' product with the solved centred query less
one number per query), so a large index still proposes candidates by approximate search and
scores only those exactly (``provenance.influence_search``). Everything here is deterministic given the config (timesteps,
noise seed, projection seed), so an index built at the end of training and a query computed
at generation time live in the same space, and a statement can be recomputed from the
parameters recorded with the generation.

The projection is a count sketch (each parameter coordinate goes to one seeded bucket with a
seeded sign): linear in the parameter count, no dense random matrix, identical every time.

This module is the method's arithmetic (config, index, scores) and needs only numpy; the
gradients themselves are taken through a diffusers pipeline by ``training.attribution_features``.
"""

from __future__ import annotations

import ast
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from PIL import Image

from provenance.influence_search import CANDIDATES, CENTRED_CANDIDATES, CandidateSearch, one_blas_thread
from provenance.influence_shares import AssetShare, InfluenceShares, blend, influence_shares

METHOD = "dtrak-square-countsketch"
VERSION = "4"
"""4: version 3 with the evidence view blended with pixel similarity (``pixel_weight``); 3: two views of one
feature pass, one ranking the evidence and one splitting the pool (``payment_*``); 2: one score for both,
normalised as ``normalisation`` says; 1: raw kernel scores. An index or generation recorded under an older
version keeps its recorded settings: it is scored as it was."""
VERSIONS = ("1", "2", "3", VERSION)
NORMALISATIONS = ("none", "self", "calibrated", "centered", "centered_calibrated", "das")
PRECONDITIONERS = ("none", "kfac", "ekfac")
WITH_RESIDUALS = ("das",)
"""Normalisations that weigh each training image by its denoising residual (the index keeps them)."""
WITH_CALIBRATION_OUTPUTS = ("calibrated", "centered", "centered_calibrated")
"""Normalisations that need the model's own outputs (``calibration_outputs``) to build an index."""
CENTERED = ("centered", "centered_calibrated")
"""Normalisations whose features (training images', outputs') are taken less the calibration outputs' mean."""
__all__ = ["AssetShare", "InfluenceConfig", "InfluenceIndex", "InfluenceShares", "OutputScores", "Scored", "blend",
           "influence_shares"]


@dataclass(frozen=True)
class InfluenceConfig:
    timesteps: tuple[int, ...] = (900,)
    """The evidence view's timesteps (the one view of a version 1 or 2 config). One late timestep: with
    self-normalised scores it leads the benchmark on per-image LDS among the methods meeting the hub and
    oracle targets (``benchmarks/results/attribution_cpu.json``), so it ranks the training images shown
    as an output's evidence."""
    noise_seed: int = 20240501
    projection_dim: int = 2048
    projection_seed: int = 7
    damping: float = 1.0
    """lambda, relative to the mean diagonal of Phi^T Phi (scale-free across models); 1.0 beat 0.1 and 0.01 on LDS."""
    parameters: str = "auto"
    """``lora`` (LoRA weights), ``tail`` (the last up-block and conv_out), or ``auto`` (LoRA if present)."""
    normalisation: str = "self"
    """How scores are made comparable across training images: ``self``, ``calibrated``, ``centered``,
    ``centered_calibrated`` or ``none`` (above)."""
    calibration_outputs: int = 32
    """``calibrated`` and ``centered``: outputs of the model, for captions drawn from its training data with
    fixed seeds, that standardise each row's scores or give the centre every feature is taken from."""
    calibration_seed: int = 31
    payment_timesteps: tuple[int, ...] | None = (100, 500, 900)
    """The payment view's timesteps, or None when one view both ranks the evidence and splits the pool
    (versions 1 and 2). Its scores split each output's influence pool: centred scores over 100/500/900 predict
    what removing a contributor changes better than any single score that also ranks images well
    (contributor LDS of the pool 0.56-0.59 against 0.43 for the evidence view), and the evidence view's
    per-image LDS is what the payment view lacks (``benchmarks/results/contributor_shares_lds.json``)."""
    payment_normalisation: str = "centered"
    pixel_weight: float = 0.75
    """The share of pixel similarity in the evidence view's score (version 4; 0: gradients alone, version 3).
    Each part is standardised over the index for each output, so the weight is a share of two unit-free
    scores. Only a split config's evidence view blends (a one-view config keeps 0): the payment view's shares
    stay gradient-only. 3/4 is the weight whose per-image LDS was above pixel nearest neighbours' whole
    interval on both models it was measured on (0.54 [0.50, 0.59] against [0.44, 0.51]; 0.46 [0.42, 0.50]
    against [0.33, 0.41]), with hubness 0.20 on both; 1/2 read 0.51 and 0.47 with hubness 0.125, inside the
    first model's pixel interval (``benchmarks/results/contributor_shares_payment_calibrated.json``,
    ``attribution_cpu_blend.json``)."""
    pixel_size: int = 32
    """The side of the square RGB thumbnail a pixel row is taken at (``pixel_row``)."""
    preconditioner: str = "none"
    """``kfac`` or ``ekfac``: every gradient is multiplied by (F + lambda I)^(-1/2), F the tail's Gauss-Newton
    matrix in Kronecker-factored blocks fitted on the training images (``training.influence_preconditioner``),
    before it is sketched; ``none``: raw gradients. An index of such a config keeps the preconditioner it was
    fitted with (``preconditioner``) and every output is scored through it. Not the default: measured in
    ``benchmarks/results/attribution_cpu_kfac.json``."""
    preconditioner_damping: float = 0.1
    """lambda of each block, relative to the block's mean eigenvalue."""
    preconditioner_examples: int = 256
    """Training images (seeded sample) the preconditioner is fitted on."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.pixel_weight <= 1.0:
            raise ValueError(f"pixel_weight is a share between 0 and 1, not {self.pixel_weight}")
        if not self.split:  # one view (version 2) ranks and pays by one score: no evidence view to blend
            object.__setattr__(self, "pixel_weight", 0.0)
        if self.pixel_size < 4:
            raise ValueError(f"a pixel row needs a thumbnail of at least 4 x 4, not {self.pixel_size}")
        for normalisation in (self.normalisation, self.payment_normalisation):
            if normalisation not in NORMALISATIONS:
                raise ValueError(f"normalisation must be one of {NORMALISATIONS}, not {normalisation!r}")
        normalisations = {n for n, _ in self.views()}
        if normalisations & {"calibrated", "centered_calibrated"} and self.calibration_outputs < 2:
            raise ValueError("calibrated scores need at least 2 calibration outputs (a spread)")
        if "centered" in normalisations and self.calibration_outputs < 1:
            raise ValueError("centred scores need at least 1 calibration output")
        if not self.timesteps or self.payment_timesteps == ():
            raise ValueError("every view needs at least one timestep")
        if self.preconditioner not in PRECONDITIONERS:
            raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, not {self.preconditioner!r}")
        if not self.preconditioner_damping > 0 or self.preconditioner_examples < 1:
            raise ValueError("a preconditioner needs a positive damping and at least one training example")
        for timesteps in (self.timesteps, self.payment_timesteps or ()):
            if len(set(timesteps)) != len(timesteps):  # one noise per distinct timestep: a repeat would not repeat
                raise ValueError(f"a view's timesteps repeat: {list(timesteps)}")

    @property
    def split(self) -> bool:
        """Whether evidence and payment are two views (version 3) rather than one score."""
        return self.payment_timesteps is not None

    def views(self) -> list[tuple[str, tuple[int, ...]]]:
        """(normalisation, timesteps) of each view: the evidence's, then the payment's when split."""
        evidence = (self.normalisation, tuple(self.timesteps))
        return [evidence, (self.payment_normalisation, tuple(self.payment_timesteps))] if self.split else [evidence]

    @property
    def feature_timesteps(self) -> tuple[int, ...]:
        """Every timestep a feature pass takes a gradient at, in the order their fixed noises are drawn: the
        payment view's, then the evidence view's others (one view: its own, as in versions 1 and 2)."""
        return tuple(dict.fromkeys((*(self.payment_timesteps or ()), *self.timesteps)))

    def view_config(self, view: int) -> InfluenceConfig:
        """One view's gradient scores as a single-view config: how its index normalises and damps (features
        still come from this config's feature pass, whose noises are drawn for ``feature_timesteps``; the
        evidence view's blend with pixels is the split index's, ``InfluenceIndex.build``)."""
        normalisation, timesteps = self.views()[view]
        return replace(self, timesteps=timesteps, normalisation=normalisation, payment_timesteps=None,
                       pixel_weight=0.0)

    @property
    def blends_pixels(self) -> bool:
        """Whether the evidence view's scores blend in pixel similarity (version 4): indexes keep pixel codes
        (``pixel_codes``) and every output is scored with its own pixel row (``pixel_row``)."""
        return self.pixel_weight > 0

    @property
    def uses_residuals(self) -> bool:
        """Whether building an index takes each training image's denoising residual (``WITH_RESIDUALS``)."""
        return any(normalisation in WITH_RESIDUALS for normalisation, _ in self.views())

    @property
    def uses_calibration_outputs(self) -> bool:
        """Whether building an index draws the model's own outputs (``WITH_CALIBRATION_OUTPUTS``)."""
        return any(normalisation in WITH_CALIBRATION_OUTPUTS for normalisation, _ in self.views())

    def as_dict(self) -> dict:
        record = {"method": METHOD, "version": VERSION, **asdict(self), "timesteps": list(self.timesteps)}
        if not self.blends_pixels:  # recorded as version 3 (or 2) recorded it, so it is scored the same way
            record.update(version="3")
            del record["pixel_weight"], record["pixel_size"]
        if self.preconditioner == "none":  # recorded as before preconditioning existed: the same record
            for key in ("preconditioner", "preconditioner_damping", "preconditioner_examples"):
                del record[key]
        if self.split:
            record["payment_timesteps"] = list(self.payment_timesteps)
        else:  # one view: recorded as version 2 recorded it
            record.update(version="2")
            del record["payment_timesteps"], record["payment_normalisation"]
        return record

    @classmethod
    def from_dict(cls, data: Mapping) -> InfluenceConfig:
        """The config a recorded ``as_dict`` describes (refused if another method or version made it)."""
        version = str(data.get("version"))
        if data.get("method") != METHOD or version not in VERSIONS:
            raise ValueError(f"recorded with {data.get('method')} v{data.get('version')}, not {METHOD} v{VERSION}")
        values = {k: v for k, v in data.items() if k not in ("method", "version")}
        if version == "1":  # recorded before normalisation: its generations stay auditable as they were scored
            values["normalisation"] = "none"
        # a setting missing from the record had its version's default, not today's
        values.setdefault("normalisation", VERSION_DEFAULTS[version]["normalisation"])
        values.setdefault("pixel_weight", VERSION_DEFAULTS[version]["pixel_weight"])
        values.setdefault("preconditioner", VERSION_DEFAULTS[version]["preconditioner"])
        values["timesteps"] = tuple(values.get("timesteps", VERSION_DEFAULTS[version]["timesteps"]))
        if VERSION_DEFAULTS[version]["payment_timesteps"] is None:  # one view: its score both ranked and paid
            values.pop("payment_normalisation", None)
            values["payment_timesteps"] = None
        else:
            values["payment_timesteps"] = tuple(values.get("payment_timesteps",
                                                           VERSION_DEFAULTS[version]["payment_timesteps"]))
        return cls(**values)


VERSION_DEFAULTS = {
    "1": {"normalisation": "none", "timesteps": (100, 300, 500, 700, 900), "payment_timesteps": None,
          "pixel_weight": 0.0, "preconditioner": "none"},
    "2": {"normalisation": "self", "timesteps": (900,), "payment_timesteps": None, "pixel_weight": 0.0,
          "preconditioner": "none"},
    "3": {"normalisation": "self", "timesteps": (900,), "payment_timesteps": (100, 500, 900), "pixel_weight": 0.0,
          "preconditioner": "none"},
    "4": {"normalisation": "self", "timesteps": (900,), "payment_timesteps": (100, 500, 900), "pixel_weight": 0.75,
          "preconditioner": "none"}}

STANDARDISATION_SAMPLE = 50_000
"""Rows (seeded; every row of a smaller index) whose mean and covariance standardise a blended evidence view's
two scores for each output: exact below this size, a bounded cost above it."""


def pixel_codes(image: Image.Image, size: int = 32) -> np.ndarray:
    """An image as a blended index keeps it: RGB at ``size`` x ``size`` (bicubic), as its bytes (3 size^2 uint8).
    A quarter of float rows' size, and exact: ``pixel_row`` is computed from them."""
    return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC),
                      dtype=np.uint8).reshape(-1)


def pixel_row(image: Image.Image, size: int = 32) -> np.ndarray:
    """An image as pixel similarity compares it: its ``pixel_codes`` in 0..1, less their mean, unit length; the
    inner product of two rows is their pixels' correlation."""
    return unit_pixel_rows(pixel_codes(image, size)[None])[0]


def unit_pixel_rows(codes: np.ndarray) -> np.ndarray:
    """(n, 3 size^2) pixel codes as ``pixel_row`` rows (float32)."""
    rows = np.asarray(codes, dtype=np.float32) / 255
    rows -= rows.mean(axis=1, keepdims=True)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-6)


class PixelRows:
    """An index's pixel codes read as ``pixel_row`` rows without converting them all (a large index's codes
    may be memory-mapped): each row's mean and length are computed once, then a product with an output's row
    reads only the bytes of the rows asked for."""

    def __init__(self, codes: np.ndarray, chunk: int = 10_000):
        self.codes, self.shape, self.chunk = codes, codes.shape, chunk
        self._means_and_lengths: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, key) -> np.ndarray:
        return unit_pixel_rows(np.atleast_2d(self.codes[key]))

    def _stats(self) -> tuple[np.ndarray, np.ndarray]:
        if self._means_and_lengths is None:
            means, lengths = [], []
            for start in range(0, len(self.codes), self.chunk):
                block = np.asarray(self.codes[start:start + self.chunk], dtype=np.float64) / 255
                block_means = block.mean(axis=1)
                means.append(block_means)
                lengths.append(np.linalg.norm(block - block_means[:, None], axis=1))
            self._means_and_lengths = (np.concatenate(means).astype(np.float32),
                                       np.maximum(np.concatenate(lengths), 1e-6).astype(np.float32))
        return self._means_and_lengths

    def products(self, positions, row: np.ndarray) -> np.ndarray:
        """The rows at ``positions`` (an index array or a slice) times ``row``: (x / 255 - mean) . v / length."""
        means, lengths = self._stats()
        codes = np.asarray(self.codes[positions], dtype=np.float32)
        return ((codes @ row) / 255 - means[positions] * float(row.sum())) / lengths[positions]


SEARCH_MIN_ROWS = 20_000
"""From this many indexed images on, scoring searches candidates instead of scanning every row."""


@dataclass
class Scored:
    """One output's exact scores for some of the index's rows (all of them, or the search's candidates)."""

    positions: np.ndarray
    scores: np.ndarray


@dataclass
class OutputScores:
    """One output's scores in each role: ``evidence`` ranks the training images shown beside it, ``payment``
    splits its influence pool (the same scores unless the index is split)."""

    evidence: Scored
    payment: Scored


class ScaledRows:
    """Rows less a centre (when given), divided by a per-row scale (when given), read lazily (a memory-mapped
    index is never copied whole)."""

    def __init__(self, rows: np.ndarray, scale: np.ndarray | None, centre: np.ndarray | None = None):
        self.rows, self.scale = rows, scale
        self.centre = None if centre is None else centre.astype(np.float32)
        self.shape = rows.shape

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key) -> np.ndarray:
        rows = np.asarray(self.rows[key], dtype=np.float32)
        rows = rows if self.centre is None else rows - self.centre
        return rows if self.scale is None else rows / self.scale[key][:, None]


@dataclass
class InfluenceIndex:
    """Training features and their kernel: score(i, q) = phi_i^T (Phi^T Phi + lambda I)^-1 phi_q, normalised
    as the config says (centred: every feature less the calibration outputs' mean first).

    The query is solved against the kernel once (d x d) and the rows are plain features, so rows can be
    appended (``extend``) without touching the old ones, and searched by inner product (``candidates``).
    Indexes saved before that kept ``Phi (Phi^T Phi + lambda I)^-1`` as their rows and no kernel: they
    load with ``gram`` None and score the same way."""

    asset_ids: list[uuid.UUID]
    contributor_ids: list[uuid.UUID]
    rows: np.ndarray
    config: dict
    fingerprint: dict = field(default_factory=dict)
    """What the index is valid for: snapshot Merkle root and model weights digest."""
    gram: np.ndarray | None = None
    """Phi^T Phi (float64, d x d) of the rows as stored (a centred index centres it when it solves); None for
    an index saved with pre-multiplied rows."""
    search: CandidateSearch | None = None
    calibration: np.ndarray | None = None
    """(C, d) features of the calibration outputs of a ``calibrated`` or ``centered`` index; None otherwise."""
    payment: InfluenceIndex | None = None
    """A split (version 3) index's payment view over the same rows, in its own kernel and normalisation;
    None when this index's scores also split the pool."""
    pixels: np.ndarray | None = None
    """(N, 3 size^2) ``pixel_codes`` of every training image (uint8), for a blended evidence view (version 4);
    else None. Indexes saved in version 4's first release kept each image's float ``pixel_row``: they score the
    same, and grow by rows."""
    pixel_search: CandidateSearch | None = None
    """A large blended index's search over its pixel rows: its candidates join the gradient search's."""
    residuals: np.ndarray | None = None
    """(N,) float32 denoising residual of every training image, for a ``das`` view; None otherwise."""
    preconditioner: dict[str, np.ndarray] | None = None
    """A preconditioned config's K-FAC or EK-FAC preconditioner, fitted for this model, as named arrays
    (``training.influence_preconditioner``): the rows were taken through it, so every output must be too."""
    _solver: np.ndarray | None = field(default=None, repr=False)
    _standardisation: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _moments: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = field(default=None,
                                                                                                  repr=False)
    _pixel_view: PixelRows | None = field(default=None, repr=False)

    @classmethod
    def build(cls, features: np.ndarray, *, asset_ids: Sequence[uuid.UUID], contributor_ids: Sequence[uuid.UUID],
              config: InfluenceConfig, fingerprint: Mapping[str, str], calibration: np.ndarray | None = None,
              pixels: np.ndarray | None = None, residuals: np.ndarray | None = None,
              preconditioner: Mapping[str, np.ndarray] | None = None,
              search_min_rows: int = SEARCH_MIN_ROWS) -> InfluenceIndex:
        """``features``: (N, d) of a one-view config, (N, 2, d) of a split one (evidence, payment), and the
        calibration outputs' likewise; ``pixels``: (N, 3 size^2) ``pixel_codes`` when the config blends them;
        ``residuals``: (N,) or (N, 2) denoising residuals (``Attributor.index_rows_of_many``) when a view is ``das``;
        ``preconditioner``: the arrays of the preconditioner the features were taken through, when the config has
        one."""
        pixels = cls._checked_pixels(pixels, config, len(asset_ids))
        if (preconditioner is None) != (config.preconditioner == "none") or (
                preconditioner is not None and not preconditioner):
            raise ValueError(f"a {config.preconditioner} config's index keeps the preconditioner its features were "
                             f"taken through: {'none' if not preconditioner else 'one'} given")
        index = cls._build_views(features, asset_ids=asset_ids, contributor_ids=contributor_ids, config=config,
                                 fingerprint=fingerprint, calibration=calibration, pixels=pixels,
                                 residuals=residuals, search_min_rows=search_min_rows)
        index.preconditioner = None if preconditioner is None else {
            name: np.asarray(array) for name, array in preconditioner.items()}
        return index

    @classmethod
    def _build_views(cls, features: np.ndarray, *, asset_ids: Sequence[uuid.UUID],
                     contributor_ids: Sequence[uuid.UUID], config: InfluenceConfig, fingerprint: Mapping[str, str],
                     calibration: np.ndarray | None, pixels: np.ndarray | None, residuals: np.ndarray | None,
                     search_min_rows: int) -> InfluenceIndex:
        if (residuals is None) == config.uses_residuals:
            raise ValueError("denoising residuals are for a das index: the config "
                             f"{'asks for them' if config.uses_residuals else 'has no das view'}, "
                             f"{'none' if residuals is None else 'some'} given")
        if not config.split:
            return cls._build_view(features, asset_ids=asset_ids, contributor_ids=contributor_ids, config=config,
                                   fingerprint=fingerprint, calibration=calibration, residuals=residuals,
                                   search_min_rows=search_min_rows)
        features = np.asarray(features)
        if features.ndim != 3 or features.shape[1] != 2:
            raise ValueError("a split config's features are (examples, 2 views, dimension)")
        if residuals is not None and np.shape(residuals) != (len(features), 2):
            raise ValueError("a split config's residuals are (examples, 2 views)")
        views = []
        for view in range(2):
            view_config = config.view_config(view)
            view_calibration = None
            if view_config.uses_calibration_outputs:
                if calibration is None or np.ndim(calibration) != 3:
                    raise ValueError("the payment or evidence view needs calibration features (outputs, 2 views, "
                                     "dimension)")
                view_calibration = np.asarray(calibration)[:, view]
            views.append(cls._build_view(features[:, view], asset_ids=asset_ids, contributor_ids=contributor_ids,
                                         config=view_config, fingerprint=fingerprint, calibration=view_calibration,
                                         residuals=np.asarray(residuals)[:, view] if view_config.uses_residuals
                                         else None, search_min_rows=search_min_rows))
        evidence, payment = views
        evidence.config, evidence.payment, evidence.pixels = config.as_dict(), payment, pixels
        if pixels is not None and evidence.search is not None:
            evidence.pixel_search = evidence.new_pixel_search()
        return evidence

    @staticmethod
    def _checked_pixels(pixels: np.ndarray | None, config: InfluenceConfig, count: int) -> np.ndarray | None:
        if not config.blends_pixels:
            if pixels is not None:
                raise ValueError("pixel rows are for a config that blends pixel similarity (pixel_weight > 0)")
            return None
        width = 3 * config.pixel_size ** 2
        if pixels is None or np.shape(pixels) != (count, width):
            raise ValueError(f"a blended evidence view needs one pixel row per example: ({count}, {width}), "
                             f"{'none' if pixels is None else np.shape(pixels)} given")
        if np.asarray(pixels).dtype != np.uint8:
            raise ValueError("an index keeps pixel codes (uint8, as pixel_codes makes them), not float rows")
        return np.asarray(pixels)

    @classmethod
    def _build_view(cls, features: np.ndarray, *, asset_ids: Sequence[uuid.UUID],
                    contributor_ids: Sequence[uuid.UUID], config: InfluenceConfig, fingerprint: Mapping[str, str],
                    calibration: np.ndarray | None, residuals: np.ndarray | None,
                    search_min_rows: int) -> InfluenceIndex:
        phi = np.asarray(features, dtype=np.float32)
        if phi.ndim != 2 or phi.shape[0] != len(asset_ids) or len(asset_ids) != len(contributor_ids):
            raise ValueError("one feature row per asset, with its contributor")
        residuals = _checked_residuals(residuals, len(phi))
        if (calibration is None) == config.uses_calibration_outputs:
            raise ValueError(f"calibration features are for a {' or '.join(WITH_CALIBRATION_OUTPUTS)} index: the "
                             f"config asks for {config.calibration_outputs if config.uses_calibration_outputs else 0}, "
                             f"{'none' if calibration is None else len(calibration)} given")
        if calibration is not None:
            calibration = np.asarray(calibration, dtype=np.float32)
            if calibration.shape != (config.calibration_outputs, phi.shape[1]):
                raise ValueError(f"calibration features must be ({config.calibration_outputs}, {phi.shape[1]})")
        gram = phi.astype(np.float64).T @ phi.astype(np.float64)
        index = cls(list(asset_ids), list(contributor_ids), phi, config.as_dict(), dict(fingerprint), gram,
                    calibration=calibration, residuals=residuals)
        if len(phi) >= search_min_rows:
            index.search = index.new_search()
        return index

    def new_search(self) -> CandidateSearch:
        """A search over the rows (divided by their per-row scale) whitened by the current kernel
        (K^-1 = L L^T: rows by L, queries by L^-T). Its candidate count is stored with it, so an index
        built with another count replays its own."""
        whitening = np.linalg.cholesky(self._inverse_kernel())
        return CandidateSearch.build(self.scaled_rows(), transform=whitening,
                                     candidates=CENTRED_CANDIDATES if self._normalisation() in CENTERED else CANDIDATES,
                                     seed=int(self.config.get("projection_seed", 0)))

    def new_pixel_search(self) -> CandidateSearch:
        """A search over the pixel rows (plain inner products: pixel similarity needs no whitening)."""
        return CandidateSearch.build(self.pixel_rows(), seed=int(self.config.get("projection_seed", 0)))

    def pixel_rows(self) -> np.ndarray | PixelRows:
        """The training images' ``pixel_row``s: read from their codes, or the float rows an early version 4
        index kept."""
        if self.pixels is None or self.pixels.dtype != np.uint8:
            return self.pixels
        if self._pixel_view is None or self._pixel_view.codes is not self.pixels:
            self._pixel_view = PixelRows(self.pixels)
        return self._pixel_view

    def _pixel_products(self, positions, row: np.ndarray) -> np.ndarray:
        rows = self.pixel_rows()
        if isinstance(rows, PixelRows):
            return rows.products(positions, row)
        return np.asarray(rows[positions], dtype=np.float32) @ row

    def _pixel_weight(self) -> float:
        return float(self.config.get("pixel_weight", 0.0)) if self.pixels is not None else 0.0

    def scaled_rows(self) -> np.ndarray | ScaledRows:
        """The rows a query vector multiplies, as the search sees them: divided by their per-row scale when
        scores are rescaled per row, and less the centre for a centred index.

        A centred score is the stored row's product less c^T v, one number per query, so centring changes no
        order; but the search must see centred rows. Every raw row shares the calibration outputs' mean, and
        that shared part dominated the inner products the graph is built on: searched raw, a centred index's
        search found 0.10 of the exact top 50 on the benchmark's real index (0.97 centred,
        ``benchmarks/attribution_scale.py``)."""
        centre = self._centre()
        if self._rescaled():  # a centred row's offset is divided by the row's scale too
            return ScaledRows(self.rows, self._standardised()[1], centre)
        if centre is None:
            return self.rows
        return ScaledRows(self.rows, None, centre)

    def _rescaled(self) -> bool:
        return self._normalisation() in ("self", "calibrated", "centered_calibrated", "das")

    def _centre(self) -> np.ndarray | None:
        """The mean feature of the calibration outputs (float64) of a centred index; None otherwise."""
        if self._normalisation() not in CENTERED:
            return None
        return self.calibration.astype(np.float64).mean(axis=0)

    def _normalisation(self) -> str:
        return "none" if self.gram is None else str(self.config.get("normalisation", "none"))

    def paying(self) -> InfluenceIndex:
        """The index whose scores split the pool: a split index's payment view, else this one."""
        return self.payment if self.payment is not None else self

    def extend(self, features: np.ndarray, *, asset_ids: Sequence[uuid.UUID], contributor_ids: Sequence[uuid.UUID],
               fingerprint: Mapping[str, str], pixels: np.ndarray | None = None,
               residuals: np.ndarray | None = None, search_min_rows: int = SEARCH_MIN_ROWS) -> None:
        """Add rows (new training images of the same model space): the kernel gains their outer products and
        the search their compact rows; scores equal those of an index built from all rows at once. A
        normalised index's per-row scales depend on the kernel, so every row's changes: its search is refitted.
        A split index takes (N, 2, d) features and grows both views; a blended one, their pixel rows too; a das
        view, their residuals ((N,), or (N, 2) for a split index)."""
        if (residuals is None) != (self.residuals is None and (self.payment is None or
                                                               self.payment.residuals is None)):
            raise ValueError("a das index grows by one denoising residual per example, any other by none")
        if residuals is not None:  # checked whole before either view grows: nothing half-written
            if self.payment is not None and np.shape(residuals) != (len(asset_ids), 2):
                raise ValueError("a split index grows by (examples, 2 views) residuals")
            for column in ([residuals] if self.payment is None else np.asarray(residuals).T):
                _checked_residuals(column, len(asset_ids))
        if (pixels is None) != (self.pixels is None) or (
                pixels is not None and np.shape(pixels) != (len(asset_ids), self.pixels.shape[1])):
            raise ValueError("a blended index grows by one pixel row per example, any other by none")
        if pixels is not None and np.asarray(pixels).dtype != np.uint8:
            raise ValueError("an index grows by pixel codes (uint8, as pixel_codes makes them), not float rows")
        if self.payment is not None:
            features = np.asarray(features)
            if features.ndim != 3 or features.shape[1] != 2:
                raise ValueError("a split index grows by (examples, 2 views, dimension) features")
            self.payment.extend(features[:, 1], asset_ids=asset_ids, contributor_ids=contributor_ids,
                                fingerprint=fingerprint, search_min_rows=search_min_rows,
                                residuals=None if self.payment.residuals is None else np.asarray(residuals)[:, 1])
            features = features[:, 0]
            residuals = None if self.residuals is None else np.asarray(residuals)[:, 0]
        if self.gram is None:
            raise ValueError("an index saved with pre-multiplied rows cannot grow: rebuild it")
        phi = np.asarray(features, dtype=np.float32)
        if phi.ndim != 2 or phi.shape[1] != self.rows.shape[1] or len(phi) != len(asset_ids) \
                or len(asset_ids) != len(contributor_ids):
            raise ValueError("one feature row per asset, with its contributor, in the index's dimension")
        if self.residuals is not None:
            self.residuals = np.concatenate([self.residuals, _checked_residuals(residuals, len(phi))])
        self.rows = np.concatenate([self.rows, phi])
        self.gram = self.gram + phi.astype(np.float64).T @ phi.astype(np.float64)
        self.asset_ids += list(asset_ids)
        self.contributor_ids += list(contributor_ids)
        self.fingerprint = dict(fingerprint)
        self._solver = self._standardisation = self._moments = None
        if pixels is not None:  # an early version 4 index keeps float rows: it grows by rows
            added = np.asarray(pixels) if self.pixels.dtype == np.uint8 else unit_pixel_rows(pixels)
            self.pixels = np.concatenate([self.pixels, added])
        if self.search is not None and self._normalisation() == "none":
            self.search.add(phi)  # the kernel's whitening is refitted with the next search; raw rows keep order
        elif self.search is not None or len(self.rows) >= search_min_rows:
            self.search = self.new_search()
        if self.pixels is not None and self.search is not None:
            if self.pixel_search is None:
                self.pixel_search = self.new_pixel_search()
            else:  # pixel rows do not depend on the kernel: appended, like raw rows
                self.pixel_search.add(unit_pixel_rows(pixels))

    def valid_for(self, fingerprint: Mapping[str, str]) -> bool:
        return self.fingerprint == dict(fingerprint)

    def query_vector(self, query: np.ndarray) -> np.ndarray:
        """What the (scaled) rows are multiplied by: (Phi^T Phi + lambda I)^-1 phi_q, less the calibration
        outputs' mean solution when the index is calibrated; for a centred one, K_c^-1 (phi_q - c) with the
        centred kernel K_c (``score_offset`` is what is then taken off every row's product)."""
        query = np.asarray(query, dtype=np.float64)
        if self.gram is None:
            return query.astype(np.float32)
        centre = self._centre()
        solved = self._inverse_kernel() @ (query if centre is None else query - centre)
        if self._normalisation() == "calibrated":
            solved = solved - self._standardised()[0]
        return solved.astype(np.float32)

    def score_offset(self, vector: np.ndarray) -> float:
        """How much every row's product with a query vector exceeds its score: c^T v for a centred index
        ((phi_i - c)^T v = phi_i^T v - c^T v: one number per query, so rows rank by their products alone
        and the search needs no centred copy of them); 0 otherwise."""
        centre = self._centre()
        return 0.0 if centre is None else float(centre @ np.asarray(vector, dtype=np.float64))

    def _kernel(self) -> np.ndarray:
        """Phi^T Phi, or for a centred index (Phi - 1 c^T)^T (Phi - 1 c^T), from the stored Gram matrix and the
        rows' sum: the rows themselves stay as features, so an index can grow and its centre does not move."""
        centre = self._centre()
        if centre is None:
            return self.gram.copy()
        total = np.zeros(self.gram.shape[0])
        for start in range(0, len(self.rows), 100_000):
            total += np.asarray(self.rows[start:start + 100_000], dtype=np.float64).sum(axis=0)
        cross = np.outer(centre, total)
        return self.gram - cross - cross.T + len(self.rows) * np.outer(centre, centre)

    def _inverse_kernel(self) -> np.ndarray:
        if self._solver is None:
            damping = float(self.config.get("damping", InfluenceConfig.damping))
            kernel = self._kernel()
            kernel[np.diag_indices_from(kernel)] += damping * max(float(np.trace(kernel)) / kernel.shape[0], 1e-12)
            inverse = np.linalg.inv(kernel)
            self._solver = (inverse + inverse.T) / 2  # symmetric to the last bit, so Cholesky accepts it
        return self._solver

    def _standardised(self, chunk: int = 100_000) -> tuple[np.ndarray | None, np.ndarray]:
        """(the shift of every solved query: the calibration outputs' mean solution, or None; each row's
        scale: the root of its self-influence, or its spread of scores over the calibration outputs, centred
        ones' for a centred index, or for a das one (1 - h_i) / e_i, its leverage's complement over its residual)."""
        if self._standardisation is None:
            inverse = self._inverse_kernel()
            centre = self._centre()
            blocks = (np.asarray(self.rows[start:start + chunk], dtype=np.float64)
                      - (0.0 if centre is None else centre) for start in range(0, len(self.rows), chunk))
            if self._normalisation() in ("calibrated", "centered_calibrated"):
                calibration = self.calibration.astype(np.float64) - (0.0 if centre is None else centre)
                solved = calibration @ inverse  # (C, d); K^-1 is symmetric
                # centred: the calibration outputs' mean solution is 0, so no query is shifted
                shift = solved.mean(axis=0) if centre is None else None
                scale = np.concatenate([(block @ solved.T).std(axis=1) for block in blocks])
            else:
                shift = None
                leverage = np.maximum(np.concatenate([np.einsum("ij,ij->i", block @ inverse, block)
                                                      for block in blocks]), 0.0)
                if self._normalisation() == "das":  # a damped kernel keeps h_i below 1; the floor guards rounding
                    scale = np.maximum(1.0 - leverage, 1e-6) / np.maximum(self.residuals.astype(np.float64), 1e-12)
                else:
                    scale = np.sqrt(leverage)
            floor = max(float(np.median(scale)) * 1e-3, 1e-12)  # a row that never varies is not infinitely sure
            self._standardisation = (shift, np.maximum(scale, floor).astype(np.float32))
        return self._standardisation

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Every row's exact score (a full scan)."""
        vector = self.query_vector(query)
        return self._scored(self.rows @ vector, vector, slice(None))

    def _scored(self, products: np.ndarray, vector: np.ndarray, positions) -> np.ndarray:
        """Scores of some rows from their products with the query vector."""
        offset = self.score_offset(vector)
        scores = products - np.float32(offset) if offset else products
        return scores / self._standardised()[1][positions] if self._rescaled() else scores

    def candidates(self, query: np.ndarray) -> Scored:
        """Exact scores of the rows that can be an output's most influential: every row of a small index;
        for a large one, the candidates its search proposes."""
        with one_blas_thread():  # a full scan too: threads left spinning slowed the next output's features 2x
            if self.search is None:
                return Scored(np.arange(len(self.rows)), self.scores(query))
            vector = self.query_vector(query)
            positions = np.sort(self.search.search(vector))
            return Scored(positions, self._scored(self.rows[positions] @ vector, vector, positions))

    def blended_candidates(self, query: np.ndarray, pixels: np.ndarray) -> Scored:
        """A blended evidence view's exact scores (version 4): (1 - w) z(gradient) + w z(pixel similarity) of
        every row of a small index; of a large one's candidates, those of its gradient search and of its pixel
        search together (a row can lead the blend by either part)."""
        with one_blas_thread():
            if self.search is None:  # every row, read in place
                return Scored(np.arange(len(self.rows)), self.blended_scores(query, pixels, slice(None)))
            vector, pixels = self.query_vector(query), np.asarray(pixels, dtype=np.float32)
            positions = np.union1d(self.search.search(vector), self.pixel_search.search(pixels))
            return Scored(positions, self._blended(vector, pixels, positions))

    def blended_scores(self, query: np.ndarray, pixels: np.ndarray, positions: np.ndarray | slice) -> np.ndarray:
        """The exact blended evidence scores of the rows at ``positions`` (or a slice of them) for one output."""
        return self._blended(self.query_vector(query), np.asarray(pixels, dtype=np.float32), positions)

    def _blended(self, vector: np.ndarray, pixels: np.ndarray, positions: np.ndarray | slice) -> np.ndarray:
        gradient = self._scored(np.asarray(self.rows[positions], dtype=np.float32) @ vector, vector, positions)
        similarity = self._pixel_products(positions, pixels)
        weight = self._pixel_weight()
        parts = []
        for scores, direction, (mean, covariance) in zip((gradient, similarity), (vector, pixels),
                                                         self._blend_moments()):
            spread = np.sqrt(max(float(direction @ (covariance @ direction)), 1e-24))
            parts.append((scores.astype(np.float64) - float(mean @ direction)) / spread)
        return ((1 - weight) * parts[0] + weight * parts[1]).astype(np.float32)

    def _blend_moments(self, chunk: int = 100_000):
        """((mean, covariance) of the rows a gradient score multiplies the query vector by, (mean, covariance)
        of the pixel rows), over ``STANDARDISATION_SAMPLE`` rows: an output's scores then have mean m^T v and
        variance v^T C v over the index, with no scan."""
        if self._moments is None:
            count = len(self.rows)
            sample = np.arange(count) if count <= STANDARDISATION_SAMPLE else np.sort(
                np.random.default_rng(int(self.config.get("projection_seed", 0))).choice(
                    count, size=STANDARDISATION_SAMPLE, replace=False))
            centre = self._centre()
            scale = self._standardised()[1] if self._rescaled() else None
            gradient_rows, pixel_rows = [], []
            for start in range(0, len(sample), chunk):
                positions = sample[start:start + chunk]
                rows = np.asarray(self.rows[positions], dtype=np.float64)
                rows = rows - centre if centre is not None else rows
                gradient_rows.append(rows / scale[positions][:, None] if scale is not None else rows)
                pixel_rows.append(np.asarray(self.pixel_rows()[positions], dtype=np.float64))
            # float32: a query's variance reads the covariance once, and at 3,072 dimensions reading float64's
            # twice the bytes was most of the blend's arithmetic (the sixth digit of a z-score changes nothing)
            self._moments = tuple((mean.astype(np.float32), covariance.astype(np.float32)) for mean, covariance in
                                  (_mean_and_covariance(np.concatenate(rows)) for rows in (gradient_rows, pixel_rows)))
        return self._moments

    def score_output(self, features: np.ndarray, pixels: np.ndarray | None = None) -> OutputScores:
        """An output's candidates scored for evidence and for payment, from ``Attributor.features``: (d,) for
        a one-view index (one scoring serves both), (2, d) for a split one; ``pixels``, the output's
        ``pixel_row``, for an index whose evidence view blends them (version 4)."""
        if self.payment is None:
            scored = self.candidates(features)
            return OutputScores(scored, scored)
        features = np.asarray(features)
        if features.shape != (2, self.rows.shape[1]):
            raise ValueError(f"a split index scores (2, {self.rows.shape[1]}) features: evidence, payment")
        if self._pixel_weight():
            if pixels is None or np.shape(pixels) != (self.pixels.shape[1],):
                raise ValueError(f"a blended evidence view scores an output's pixel row ({self.pixels.shape[1]},)")
            evidence = self.blended_candidates(features[0], pixels)
        else:
            evidence = self.candidates(features[0])
        return OutputScores(evidence, self.payment.candidates(features[1]))

    def save(self, path) -> None:
        arrays = {"asset_ids": np.array([str(a) for a in self.asset_ids]),
                  "contributor_ids": np.array([str(c) for c in self.contributor_ids]),
                  "fingerprint": np.array(repr(sorted(self.fingerprint.items())))}
        if self.preconditioner is not None:
            arrays.update({f"{PRECONDITIONER}{name}": array for name, array in self.preconditioner.items()})
        np.savez_compressed(path, **arrays, **self._view_arrays(),
                            **({f"{PAYMENT}{key}": array for key, array in self.payment._view_arrays().items()}
                               if self.payment is not None else {}))

    def _view_arrays(self) -> dict[str, np.ndarray]:
        """What one view adds to the rows' ids: its features, kernel, calibration, config and search."""
        arrays = {"rows": self.rows, "config": np.array(repr(sorted(self.config.items())))}
        if self.gram is not None:
            arrays["gram"] = self.gram
        if self.calibration is not None:
            arrays["calibration"] = self.calibration
        for name, search in (("search", self.search), ("pixel_search", self.pixel_search)):
            if search is not None:
                arrays.update({f"{name}_row_basis": search.row_basis, f"{name}_query_basis": search.query_basis,
                               f"{name}_graph": search.to_bytes(), f"{name}_candidates": np.array(search.candidates)})
        if self.pixels is not None:
            arrays["pixels"] = self.pixels
        if self.residuals is not None:
            arrays["residuals"] = self.residuals
        return arrays

    @classmethod
    def load(cls, path) -> InfluenceIndex:
        with np.load(path, allow_pickle=False) as data:
            assets = [uuid.UUID(a) for a in data["asset_ids"]]
            contributors = [uuid.UUID(c) for c in data["contributor_ids"]]
            fingerprint = dict(ast.literal_eval(str(data["fingerprint"])))
            index = cls._load_view(data, "", assets, contributors, fingerprint)
            if f"{PAYMENT}rows" in data:
                index.payment = cls._load_view(data, PAYMENT, assets, contributors, fingerprint)
            index.preconditioner = {key.removeprefix(PRECONDITIONER): data[key] for key in data.files
                                    if key.startswith(PRECONDITIONER)} or None
            return index

    @classmethod
    def _load_view(cls, data, prefix: str, assets: list[uuid.UUID], contributors: list[uuid.UUID],
                   fingerprint: dict) -> InfluenceIndex:
        rows = data[f"{prefix}rows"] if f"{prefix}rows" in data else data["projected"]
        search, pixel_search = (
            CandidateSearch.from_parts(data[f"{prefix}{name}_row_basis"], data[f"{prefix}{name}_query_basis"],
                                       data[f"{prefix}{name}_graph"], int(data[f"{prefix}{name}_candidates"]))
            if f"{prefix}{name}_graph" in data else None for name in ("search", "pixel_search"))
        return cls(list(assets), list(contributors), rows, dict(ast.literal_eval(str(data[f"{prefix}config"]))),
                   dict(fingerprint), data.get(f"{prefix}gram"), search, data.get(f"{prefix}calibration"),
                   pixels=data.get(f"{prefix}pixels"), pixel_search=pixel_search,
                   residuals=data.get(f"{prefix}residuals"))


def _checked_residuals(residuals: np.ndarray | None, count: int) -> np.ndarray | None:
    """One finite, non-negative residual per row (float32), or None."""
    if residuals is None:
        return None
    residuals = np.asarray(residuals, dtype=np.float32)
    if residuals.shape != (count,) or not np.all(np.isfinite(residuals)) or np.any(residuals < 0):
        raise ValueError(f"one finite, non-negative denoising residual per row: ({count},), "
                         f"{residuals.shape} given")
    return residuals


def _mean_and_covariance(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows' mean and covariance (over the rows themselves, not an estimate of a wider population's)."""
    mean = rows.mean(axis=0)
    centred = rows - mean
    return mean, centred.T @ centred / len(rows)


PAYMENT = "payment_"
"""The prefix of a split index's payment view in its saved file."""
PRECONDITIONER = "preconditioner/"
"""The prefix of a preconditioned index's preconditioner arrays in its saved file."""


BLANK_STD = 3.0
"""Luma standard deviation (0-255) below which an output shows nothing: one flat colour."""
NOISE_CORRELATION = 0.15
"""Correlation of neighbouring pixels below which an output is noise: drawings and photos sit far above."""


def uninformative(pixels: np.ndarray) -> str | None:
    """Why an output carries nothing to attribute (``blank`` or ``noise``), or None when it does.

    A blank or pure-noise image is not "like" any training image, yet nearest-gradient scores still
    rank some asset first; such an output's pool is split pro rata instead of paying a hub."""
    luma = np.asarray(pixels, dtype=np.float64)
    luma = luma.mean(axis=2) if luma.ndim == 3 else luma
    if luma.std() < BLANK_STD:
        return "blank"
    pairs = [(luma[:, :-1], luma[:, 1:]), (luma[:-1, :], luma[1:, :])]
    correlations = []
    for left, right in pairs:
        a, b = left.ravel() - left.mean(), right.ravel() - right.mean()
        denominator = np.sqrt((a * a).sum() * (b * b).sum())
        correlations.append(float((a * b).sum() / denominator) if denominator else 1.0)
    return "noise" if np.mean(correlations) < NOISE_CORRELATION else None
