"""Self-supervised knowledge distillation from a full-table SASRec teacher to a compact student (docs/PAPERS.md §7.5).

Loss = CE(student) + w_mse * MSE(student table, teacher table) + w_kd * KL(teacher || student, summed)
       + w_cl * InfoNCE over recombined hot/cold views + w_prefix * CE on a random shorter codebook prefix (codes).
Hot items are the most frequent `hot_fraction` of items. A session holding both hot and cold items gives two mixed
views, z_S = MLP_a([h_S(hot); h_T(cold)]) and z_T = MLP_b([h_T(hot); h_S(cold)]), where h_X(part) is a soft-attention
readout of that part straight from model X's item table; each view mixes both models, so gradients reach the
student's table through both. Sessions with only hot or only cold items use the two models' full session vectors.
The teacher is frozen and in eval mode; every student-side parameter (readouts, MLPs) is optimised, and the student is
deployed with its own table only.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fedrec.data.dataset import EvalSet, Split
from fedrec.embeddings import CodesEmbedding
from fedrec.models.base import Recommender
from fedrec.models.sasrec import Batch, SASRec, SoftAttentionReadout


def hot_items(popularity: np.ndarray, fraction: float) -> torch.Tensor:
    """Boolean mask of the `fraction` most frequent items (ties broken by item id)."""
    order = np.argsort(-popularity, kind="stable")
    mask = np.zeros(len(popularity), dtype=bool)
    mask[order[:int(len(popularity) * fraction)]] = True
    return torch.from_numpy(mask)


class _CrossEntropyAndKD(torch.autograd.Function):
    """Both losses from one log-softmax of the student's logits, with the closed-form gradients p_S - one_hot(y)
    and p_S - p_T: on a CPU, autograd's separate softmax passes over the B x N logits cost about as much as the
    scoring matmuls themselves."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, teacher_log_probs: torch.Tensor,
                targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs = torch.log_softmax(logits, 1)
        teacher_probs = teacher_log_probs.exp()
        ce = -log_probs.gather(1, targets[:, None]).mean()
        kd = (teacher_probs * (teacher_log_probs - log_probs)).sum()
        ctx.save_for_backward(log_probs, teacher_probs, targets)
        return ce, kd

    @staticmethod
    def backward(ctx, grad_ce: torch.Tensor, grad_kd: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        log_probs, teacher_probs, targets = ctx.saved_tensors
        per_row = grad_ce / len(targets)
        grad = log_probs.exp().mul_(per_row + grad_kd).sub_(teacher_probs * grad_kd)
        grad[torch.arange(len(targets)), targets] -= per_row
        return grad, None, None


def cross_entropy_and_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                         targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(CE of the student on `targets`, batch mean; sum_b sum_i p_T log(p_T / p_S) at temperature 1, summed over
    the batch as in the papers). Gradients reach the student's logits only."""
    return _CrossEntropyAndKD.apply(student_logits, torch.log_softmax(teacher_logits.detach(), 1), targets)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """-mean_b log softmax_b'(a_b . b_b' / tau)[b] on L2-normalised views; positives on the diagonal."""
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(a)))


class Distiller(Recommender):
    """Trains `student` against a frozen `teacher`; scores, batches and the exported table are the student's."""

    def __init__(self, student: SASRec, teacher: SASRec, popularity: np.ndarray, kd_weight: float = 0.2,
                 cl_weight: float = 0.1, mse_weight: float = 1.0, hot_fraction: float = 0.2,
                 temperature: float = 0.2, prefix_weight: float = 0.0):
        super().__init__(student.items)
        self.student = student
        self.teacher = teacher.eval().requires_grad_(False)
        self.weights = {"kd": kd_weight, "cl": cl_weight, "mse": mse_weight, "prefix": prefix_weight}
        self.temperature = temperature
        self.register_buffer("hot", hot_items(popularity, hot_fraction))
        dim = student.items.dim
        self.hot_readout, self.cold_readout = SoftAttentionReadout(dim), SoftAttentionReadout(dim)
        self.mix_student = nn.Linear(2 * dim, dim, bias=False)
        self.mix_teacher = nn.Linear(2 * dim, dim, bias=False)
        for p in [*self.hot_readout.parameters(), *self.cold_readout.parameters(), *self.mix_student.parameters(),
                  *self.mix_teacher.parameters()]:
            nn.init.uniform_(p, -0.1, 0.1)

    def train(self, mode: bool = True) -> Distiller:
        super().train(mode)
        self.teacher.eval()
        return self

    def batches(self, split: Split, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        return self.student.batches(split, batch_size, rng)

    def n_batches(self, split: Split, batch_size: int) -> int:
        return self.student.n_batches(split, batch_size)

    def score(self, examples: EvalSet) -> torch.Tensor:
        return self.student.score(examples)

    def loss(self, batch: Batch) -> torch.Tensor:
        return sum(self.loss_terms(batch).values())

    def loss_terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The weighted terms of the loss (terms with weight 0 are skipped, not computed)."""
        ids, mask, targets = batch
        session = self.student.encode(ids, mask)
        logits = self.student.scores(session)
        with torch.no_grad():
            teacher_session = self.teacher.encode(ids, mask) if self.weights["kd"] or self.weights["cl"] else None
        terms = {}
        if self.weights["kd"]:
            with torch.no_grad():
                teacher_logits = self.teacher.scores(teacher_session)
            terms["ce"], kd = cross_entropy_and_kd(logits, teacher_logits, targets)
            terms["kd"] = self.weights["kd"] * kd
        else:
            terms["ce"] = F.cross_entropy(logits, targets)
        if self.weights["mse"]:
            terms["mse"] = self.weights["mse"] * F.mse_loss(self.student.items.table(), self.teacher.items.table())
        if self.weights["cl"]:
            z_student, z_teacher = self.views(ids, mask, session, teacher_session)
            terms["cl"] = self.weights["cl"] * info_nce(z_student, z_teacher, self.temperature)
        if self.weights["prefix"] and isinstance(self.student.items, CodesEmbedding):
            terms["prefix"] = self.weights["prefix"] * self._random_prefix_ce(ids, mask, targets)
        return terms

    def _random_prefix_ce(self, ids: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the whole student run on a random shorter codebook prefix, so that every prefix stays a
        usable model (what lets one set of codebooks serve every device budget)."""
        items = self.student.items
        full = items.n_codebooks
        if full == 1:
            return torch.zeros(())
        items.use_prefix(int(torch.randint(1, full, ())))
        try:
            return F.cross_entropy(self.student.scores(self.student.encode(ids, mask)), targets)
        finally:
            items.use_prefix(full)

    def views(self, ids: torch.Tensor, mask: torch.Tensor, session: torch.Tensor,
              teacher_session: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two views of each session: recombined hot/cold parts when it has both, else full sessions."""
        hot = self.hot[ids] & mask
        cold = ~self.hot[ids] & mask
        mixed = (hot.any(1) & cold.any(1)).unsqueeze(1)
        e_student, e_teacher = self.student.items.lookup(ids), self.teacher.items.lookup(ids)
        z_student = self.mix_student(torch.cat([self.hot_readout(e_student, hot),
                                                self.cold_readout(e_teacher, cold)], 1))
        z_teacher = self.mix_teacher(torch.cat([self.hot_readout(e_teacher, hot),
                                                self.cold_readout(e_student, cold)], 1))
        return torch.where(mixed, z_student, session), torch.where(mixed, z_teacher, teacher_session)
