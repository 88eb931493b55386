"""K-FAC and EK-FAC preconditioning of influence gradients: (F + lambda I)^(-1/2) g before the count sketch.

An influence function weighs a query's gradient against a training image's through the inverse curvature of
the model, g_q^T (F + lambda I)^(-1) g_i; D-TRAK's kernel does it after projection, in the sketch's 2,048
dimensions, where the sketch has already mixed every layer's coordinates. Here the curvature is taken where the
parameters live (Grosse and Martens 2016; George et al. 2018; Grosse et al. 2023; Mlodozeniec et al., ICLR 2025):
F is the Gauss-Newton matrix of the features' own function ||f(x_t, t)||^2 over the training images at the
feature pass's timesteps and noise, approximated block-diagonally, one block per parameter tensor of the UNet's
tail:

- a convolution's or linear layer's weight: F ~ L * A (x) G, with A the second moment of its input patches and G
  that of the gradient at its output, over training images, timesteps and the L positions (KFC); ``kfac`` takes
  the eigenvalues of that product, ``ekfac`` keeps its eigenbasis and refits each eigenvalue as the second moment
  of the per-example gradients in that basis (exact on the block's diagonal in that basis);
- a bias or norm scale: its diagonal, the per-example gradients' second moments.

The Gauss-Newton matrix of ||f||^2 is 2 J^T J, sampled without bias by backpropagating v ~ N(0, I) from the
output (J^T v v^T J has mean J^T J), so no labels and no true-Fisher sampling are needed. Each block is damped by
``damping`` times its mean eigenvalue (scale-free). Both sides of a score get (F + lambda I)^(-1/2), so a product
of two preconditioned features is the influence function's inner product and every normalisation of
``provenance.influence`` applies on top of it unchanged; the basis is not rotated back (inner products do not
change under a rotation).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

KINDS = ("kfac", "ekfac")
FIT_SEED_OFFSET = 1
"""The output directions v are drawn from ``noise_seed + FIT_SEED_OFFSET``: deterministic, and not the features'
noise."""


def preconditioner_sample(count: int, *, examples: int, seed: int) -> list[int]:
    """Positions (sorted) of the training examples a preconditioner is fitted on: ``examples`` of ``count``, seeded,
    so a rebuilt index fits the same one."""
    return sorted(random.Random(seed).sample(range(count), min(count, examples)))


class KroneckerBlock:
    """One weight's (F + lambda I)^(-1/2) in its Kronecker eigenbasis: ``out_basis`` (O, O), ``in_basis`` (I, I)
    and ``scale`` (O, I), the damped eigenvalues' inverse square roots."""

    def __init__(self, out_basis: torch.Tensor, in_basis: torch.Tensor, scale: torch.Tensor):
        self.out_basis, self.in_basis, self.scale = out_basis, in_basis, scale

    def __call__(self, grads: torch.Tensor) -> torch.Tensor:
        """(rows, O, ...) weight gradients -> (rows, O * I) preconditioned, in the eigenbasis."""
        matrices = grads.reshape(len(grads), self.scale.shape[0], self.scale.shape[1]).float()
        rotated = self.out_basis.T @ matrices @ self.in_basis
        return (rotated * self.scale).reshape(len(grads), -1)


class DiagonalBlock:
    """A bias's or norm scale's (F + lambda I)^(-1/2): one factor per coordinate."""

    def __init__(self, scale: torch.Tensor):
        self.scale = scale

    def __call__(self, grads: torch.Tensor) -> torch.Tensor:
        return grads.reshape(len(grads), -1).float() * self.scale


class KroneckerPreconditioner:
    """(F + lambda I)^(-1/2) per parameter tensor of the tail, named as ``Featurizer.tail_names`` names them."""

    def __init__(self, kind: str, damping: float, blocks: dict[str, KroneckerBlock | DiagonalBlock]):
        self.kind, self.damping, self.blocks = kind, damping, blocks

    def __call__(self, grads: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
        """Per-row gradients by name, each (rows, *shape) -> (rows, parameters): preconditioned and concatenated
        in ``names``' order (the count sketch's input)."""
        return torch.cat([self.blocks[name](grads[name]) for name in names], dim=1)


def _weight_modules(tail: torch.nn.Module, names: list[str]) -> dict[str, torch.nn.Module]:
    """The tail's convolutions and linear layers whose weight is a chosen parameter, by that weight's name. A
    grouped convolution has no patch factor here: its weight falls back to the diagonal."""
    chosen = set(names)
    found = {}
    for module_name, module in tail.named_modules():
        weight = f"{module_name}.weight"
        if weight not in chosen:
            continue
        if isinstance(module, torch.nn.Linear) or (isinstance(module, torch.nn.Conv2d) and module.groups == 1
                                                    and not isinstance(module.padding, str)):
            found[weight] = module
    return found


def _inputs_as_rows(module: torch.nn.Module, inputs: torch.Tensor) -> tuple[torch.Tensor, int]:
    """A layer's input as one row per (example, position) -- conv patches in the weight's (C, kh, kw) order --
    and the number of positions L."""
    if isinstance(module, torch.nn.Linear):
        return inputs.reshape(-1, inputs.shape[-1]).float(), 1
    patches = F.unfold(inputs.float(), module.kernel_size, dilation=module.dilation, padding=module.padding,
                       stride=module.stride)  # (B, C kh kw, L)
    return patches.transpose(1, 2).reshape(-1, patches.shape[1]), patches.shape[2]


def _outputs_as_rows(output_grads: torch.Tensor) -> torch.Tensor:
    """The gradient at a layer's output as one row per (example, position): (B, O, H, W) or (B, O) -> (rows, O)."""
    if output_grads.dim() == 4:
        return output_grads.float().permute(0, 2, 3, 1).reshape(-1, output_grads.shape[1])
    return output_grads.float().reshape(-1, output_grads.shape[-1])


class _Moments:
    """Running sums of outer products (K-FAC factors) or squares (diagonals, eigenbasis second moments)."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, total: torch.Tensor, count: int) -> None:
        self.sums[name] = self.sums[name] + total if name in self.sums else total.double()
        self.counts[name] = self.counts.get(name, 0) + count

    def mean(self, name: str) -> torch.Tensor:
        return self.sums[name] / self.counts[name]


def fit_preconditioner(*, tail: torch.nn.Module, names: list[str], parameters: dict[str, torch.nn.Parameter],
                       batches: Callable[[], Iterator[tuple[tuple, int]]],
                       per_row_grads: Callable[[tuple, torch.Tensor], dict[str, torch.Tensor]],
                       kind: str, damping: float, seed: int) -> KroneckerPreconditioner:
    """Fit (F + lambda I)^(-1/2) on the tail's inputs.

    ``batches()`` yields, each time it is called, the same batches of the tail's inputs (hidden states, skip
    connections, time embedding: what ``Featurizer.tail_inputs`` captures) with their row counts;
    ``per_row_grads(inputs, directions)`` is each row's gradient of <tail(inputs), v> by name (``torch.func``).
    Two passes: the Kronecker factors from one batched forward and backward with hooks, then each block's
    eigenvalues from per-row gradients (EK-FAC) and the diagonals."""
    if kind not in KINDS:
        raise ValueError(f"preconditioner must be one of {KINDS}, not {kind!r}")
    if not damping > 0:
        raise ValueError(f"preconditioner damping must be positive, not {damping}")
    modules = _weight_modules(tail, names)
    factors, positions = _Moments(), {}

    def directions(inputs: tuple, generator: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            shape = tail(*inputs).shape
        return torch.randn(shape, generator=generator)

    # pass 1: A (input patches) and G (output gradients) of every weight layer, from the tail on whole batches
    generator = torch.Generator().manual_seed(seed)
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # weight name -> the layer's (input, output)

    def keeper(name: str):
        def keep(_module, args, output):
            seen[name] = (args[0].detach(), output)
        return keep

    for inputs, _ in batches():
        seen.clear()
        hooks = [module.register_forward_hook(keeper(name)) for name, module in modules.items()]
        try:
            with torch.enable_grad():
                leaves = {name: p.detach().requires_grad_(True) for name, p in parameters.items()}
                output = torch.func.functional_call(tail, leaves, inputs, strict=False)
                v = torch.randn(output.shape, generator=generator)
                outputs = [seen[name][1] for name in modules]
                output_grads = torch.autograd.grad((output.float() * v).sum(), outputs) if outputs else []
        finally:
            for hook in hooks:
                hook.remove()
        for (name, module), grad in zip(modules.items(), output_grads, strict=True):
            patches, count = _inputs_as_rows(module, seen[name][0])
            deltas = _outputs_as_rows(grad)
            factors.add(f"{name}/in", patches.T.double() @ patches.double(), len(patches))
            factors.add(f"{name}/out", deltas.T.double() @ deltas.double(), len(deltas))
            positions[name] = count
    bases = {}
    for name in modules:
        in_values, in_basis = torch.linalg.eigh(factors.mean(f"{name}/in"))
        out_values, out_basis = torch.linalg.eigh(factors.mean(f"{name}/out"))
        bases[name] = (out_basis.float(), in_basis.float(),
                       positions[name] * torch.outer(out_values.clamp(min=0), in_values.clamp(min=0)))

    # pass 2: per-row gradients of <tail, v> with fresh v; their second moments in each eigenbasis (EK-FAC) and
    # on the diagonal of every other parameter
    moments = _Moments()
    generator = torch.Generator().manual_seed(seed + 1)
    for inputs, rows in batches():
        grads = per_row_grads(inputs, directions(inputs, generator))
        for name in names:
            grad = grads[name].reshape(rows, -1).float()
            if name in bases and kind == "ekfac":
                out_basis, in_basis, _ = bases[name]
                rotated = out_basis.T @ grad.reshape(rows, out_basis.shape[0], in_basis.shape[0]) @ in_basis
                moments.add(name, rotated.pow(2).sum(dim=0), rows)
            elif name not in bases:
                moments.add(name, grad.pow(2).sum(dim=0), rows)
    blocks: dict[str, KroneckerBlock | DiagonalBlock] = {}
    for name in names:
        if name in bases:
            out_basis, in_basis, products = bases[name]
            values = moments.mean(name) if kind == "ekfac" else products
            blocks[name] = KroneckerBlock(out_basis, in_basis, _damped_inverse_root(values, damping))
        else:
            blocks[name] = DiagonalBlock(_damped_inverse_root(moments.mean(name), damping))
    return KroneckerPreconditioner(kind, damping, blocks)


def _damped_inverse_root(values: torch.Tensor, damping: float) -> torch.Tensor:
    """(values + damping * mean(values))^(-1/2); a block with no curvature at all is left as it is (1)."""
    values = values.double().clamp(min=0)
    mean = float(values.mean())
    if mean <= 0:
        return torch.ones_like(values, dtype=torch.float32)
    return (values + damping * mean).rsqrt().float()


def block_arrays(preconditioner: KroneckerPreconditioner) -> dict[str, np.ndarray]:
    """The preconditioner as named arrays (``from_block_arrays`` reads them back)."""
    arrays = {}
    for name, block in preconditioner.blocks.items():
        if isinstance(block, KroneckerBlock):
            arrays.update({f"{name}/out_basis": block.out_basis.numpy(), f"{name}/in_basis": block.in_basis.numpy()})
        arrays[f"{name}/scale"] = block.scale.numpy()
    return arrays


def from_block_arrays(arrays: dict[str, np.ndarray], *, kind: str, damping: float) -> KroneckerPreconditioner:
    names = sorted({key.rsplit("/", 1)[0] for key in arrays})
    blocks: dict[str, KroneckerBlock | DiagonalBlock] = {}
    for name in names:
        scale = torch.from_numpy(np.asarray(arrays[f"{name}/scale"], np.float32))
        if f"{name}/out_basis" in arrays:
            blocks[name] = KroneckerBlock(torch.from_numpy(np.asarray(arrays[f"{name}/out_basis"], np.float32)),
                                          torch.from_numpy(np.asarray(arrays[f"{name}/in_basis"], np.float32)), scale)
        else:
            blocks[name] = DiagonalBlock(scale)
    return KroneckerPreconditioner(kind, damping, blocks)
