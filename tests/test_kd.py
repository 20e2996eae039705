"""Distillation into compact students: loss terms, gradient paths, and the teacher -> codes student pipeline."""
import json

import numpy as np
import pytest
import torch

from fedrec.configs import resolve
from fedrec.data.registry import load_dataset
from fedrec.embeddings import EmbeddingSpec, FullEmbedding, build
from fedrec.embeddings.artifact import payload_bytes
from fedrec.errors import ConfigError
from fedrec.models.sasrec import SASRec
from fedrec.train.kd import Distiller, cross_entropy_and_kd, hot_items, info_nce
from fedrec.train.teacher import build_model, load_sasrec
from fedrec.train.trainer import fit, save_run

SMALL = {"dim": 16, "inner": 16, "batch_size": 256}


def quiet(_message):
    pass


def tiny_pair(n_items=20, dim=8):
    torch.manual_seed(0)
    student = SASRec(build(EmbeddingSpec("codes", n_items, dim, {"codebooks": 2, "codewords": 4})), dropout=0.0)
    student.items.set_codes(torch.randint(0, 4, (n_items, 2)))
    teacher = SASRec(FullEmbedding(EmbeddingSpec("full", n_items, dim), init_range=0.1), dropout=0.0)
    popularity = np.arange(n_items)[::-1].copy()  # items 0..3 are the hot 20%
    return Distiller(student, teacher, popularity, kd_weight=0.2, cl_weight=0.1, mse_weight=1.0, prefix_weight=0.5)


def test_fused_cross_entropy_and_summed_kl_match_autograd_in_value_and_gradient():
    torch.manual_seed(0)
    teacher, targets = torch.randn(5, 7), torch.tensor([0, 6, 3, 3, 1])
    student = torch.randn(5, 7, requires_grad=True)
    reference = student.detach().clone().requires_grad_(True)
    p = teacher.softmax(1)
    expected_ce = torch.nn.functional.cross_entropy(reference, targets)
    expected_kd = (p * (p.log() - reference.log_softmax(1))).sum()
    ce, kd = cross_entropy_and_kd(student, teacher, targets)
    assert torch.allclose(ce, expected_ce, atol=1e-6) and torch.allclose(kd, expected_kd, atol=1e-5)
    (0.7 * ce + 0.2 * kd).backward()
    (0.7 * expected_ce + 0.2 * expected_kd).backward()
    assert torch.allclose(student.grad, reference.grad, atol=1e-6)
    assert cross_entropy_and_kd(teacher, teacher, targets)[1].abs() < 1e-5


def test_info_nce_prefers_aligned_views():
    views = torch.randn(6, 4)
    assert info_nce(views, views, 0.2) < info_nce(views, views.roll(1, 0), 0.2)


def test_hot_items_are_the_most_frequent_fraction():
    assert hot_items(np.array([5, 1, 9, 9, 0, 2, 3, 4, 8, 7]), 0.2).nonzero().flatten().tolist() == [2, 3]


def test_mixed_views_pass_gradients_to_the_student_table_through_both_views():
    distiller = tiny_pair()
    ids = torch.tensor([[0, 10, 1, 12], [5, 6, 0, 0]])   # row 0 mixes hot and cold; row 1 is all cold
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    session = distiller.student.encode(ids, mask)
    with torch.no_grad():
        teacher_session = distiller.teacher.encode(ids, mask)
    z_student, z_teacher = distiller.views(ids, mask, session, teacher_session)
    for view, readout in ((z_student, distiller.hot_readout), (z_teacher, distiller.cold_readout)):
        distiller.zero_grad()
        view[0].sum().backward(retain_graph=True)
        # the student's table enters z_S through its hot part and z_T through its cold part
        assert distiller.student.items.codebooks.grad.abs().sum() > 0
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in readout.parameters())
        assert all(p.grad is None for p in distiller.teacher.parameters())
    assert torch.equal(z_teacher[1], teacher_session[1])   # a pure session keeps the full-session views


def test_every_loss_term_is_present_and_every_student_parameter_learns():
    distiller = tiny_pair().train()
    ids = torch.tensor([[0, 10, 1, 12], [5, 6, 7, 0], [1, 2, 0, 0]])
    mask = ids > 0
    mask[0, 0] = True
    terms = distiller.loss_terms((ids, mask, torch.tensor([3, 8, 4])))
    assert set(terms) == {"ce", "mse", "kd", "cl", "prefix"} and all(torch.isfinite(t) for t in terms.values())
    assert distiller.student.items.active == 2  # the random prefix is undone after its term
    sum(terms.values()).backward()
    trainable = [(n, p) for n, p in distiller.named_parameters() if p.requires_grad]
    assert trainable and not any(n.startswith("teacher.") for n, _ in trainable)
    missing = [n for n, p in trainable if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


@pytest.fixture(scope="module")
def teacher_dir(synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    save_run(fit(synthetic, "sasrec", resolve("sasrec", "synthetic", overrides=SMALL | {"epochs": 3}), log=quiet),
             out)
    return out


def test_codes_student_distilled_from_a_saved_teacher_end_to_end(synthetic, teacher_dir, tmp_path):
    overrides = SMALL | {"epochs": 2, "embedding": "codes", "codebooks": 2, "codewords": 32, "code_epochs": 20,
                         "teacher": str(teacher_dir), "kd_weight": 0.2, "cl_weight": 0.1}
    result = fit(synthetic, "sasrec", resolve("sasrec", "synthetic", overrides=overrides), log=quiet)
    save_run(result, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["item_embedding"]["method"] == "codes"
    assert payload_bytes(tmp_path / "item_embedding.fedrec") == summary["item_embedding"]["bytes"]
    assert summary["item_embedding"]["bytes"] == -(-synthetic.n_items * 2 * 5 // 8) + 2 * 32 * 16 * 4  # 5-bit codes
    teacher_hr = json.loads((teacher_dir / "summary.json").read_text())["metrics"]["test"]["hr@20"]
    assert summary["metrics"]["test"]["hr@20"] > 0.3 * teacher_hr > 0
    by_prefix = summary["metrics"]["test_by_codebook_prefix"]
    assert set(by_prefix) == {"1", "2"} and by_prefix["2"] == summary["metrics"]["test"]
    assert by_prefix["1"]["hr@20"] > 0.3 * teacher_hr  # trained with random prefixes: one codebook still works
    deployed = load_sasrec(tmp_path, synthetic).eval()  # the saved student, without its teacher
    with torch.no_grad():
        assert torch.allclose(deployed.score(synthetic.test), result.model.eval().score(synthetic.test))


def test_codes_without_a_teacher_and_bad_teachers_are_clear_errors(synthetic, teacher_dir, tmp_path):
    with pytest.raises(ConfigError, match="learns its codes from a teacher"):
        build_model("sasrec", synthetic, resolve("sasrec", "synthetic", overrides={"embedding": "codes"}))
    with pytest.raises(ConfigError, match="summary.json not found"):
        build_model("sasrec", synthetic, resolve("sasrec", "synthetic", overrides={"teacher": str(tmp_path)}))
    with pytest.raises(ConfigError, match="differs from the student's dim"):
        build_model("sasrec", synthetic, resolve("sasrec", "synthetic",
                                                 overrides={"teacher": str(teacher_dir), "dim": 8}))


def test_random_codes_and_a_body_started_from_the_teacher(synthetic, teacher_dir):
    overrides = {"teacher": str(teacher_dir), "embedding": "codes", "codebooks": 2, "codewords": 32,
                 "code_assignment": "random", "body_from_teacher": True}
    distiller = build_model("sasrec", synthetic, resolve("sasrec", "synthetic", overrides=SMALL | overrides))
    student, teacher = distiller.student, distiller.teacher
    assert len(set(map(tuple, student.items.codes.tolist()))) == synthetic.n_items
    body = {k: v for k, v in teacher.state_dict().items() if not k.startswith("items.")}
    assert body and all(torch.equal(student.state_dict()[k], v) for k, v in body.items())
    with pytest.raises(ConfigError, match="code_assignment = 'nearest'"):
        build_model("sasrec", synthetic, resolve("sasrec", "synthetic",
                                                 overrides=SMALL | overrides | {"code_assignment": "nearest"}))
    teacher_scale = teacher.score_scale
    with pytest.raises(ConfigError, match=f"give the student --set score_scale={teacher_scale}"):
        build_model("sasrec", synthetic, resolve("sasrec", "synthetic",
                                                 overrides=SMALL | overrides | {"score_scale": teacher_scale + 4}))


def test_first_codebook_clustered_on_co_occurrence_groups_items_of_one_session(synthetic, teacher_dir):
    overrides = {"teacher": str(teacher_dir), "embedding": "codes", "codebooks": 2, "codewords": 32,
                 "code_assignment": "random", "clustered_codebooks": 1}

    def first_codebook(signal: str) -> np.ndarray:
        config = resolve("sasrec", "synthetic", overrides=SMALL | overrides | {"cluster_signal": signal})
        return build_model("sasrec", synthetic, config).student.items.codes[:, 0].numpy()

    def shared_with_next_item(clusters: np.ndarray) -> float:
        pairs = [(s[:-1], s[1:]) for s in synthetic.train_sequences if len(s) > 1]
        return float(np.mean(np.concatenate([clusters[a] == clusters[b] for a, b in pairs])))

    by_sessions, by_table = first_codebook("cooccurrence"), first_codebook("teacher")
    assert shared_with_next_item(by_sessions) > 2 * shared_with_next_item(by_table)
    with pytest.raises(ConfigError, match="cluster_signal = 'graph' is not one of 'teacher', 'cooccurrence'"):
        first_codebook("graph")


def test_teacher_blend_ablation_stores_and_scores_the_mix(synthetic, teacher_dir, tmp_path):
    """teacher_mix < 1 is the EODRec release's student table: exact bytes include the whole teacher table."""
    overrides = SMALL | {"epochs": 1, "embedding": "codes", "codebooks": 2, "codewords": 32, "teacher_mix": 0.2,
                         "code_assignment": "random", "teacher": str(teacher_dir), "kd_weight": 0.2}
    result = fit(synthetic, "sasrec", resolve("sasrec", "synthetic", overrides=overrides), log=quiet)
    save_run(result, tmp_path)
    items = result.model.student.items
    teacher_table = load_sasrec(teacher_dir, synthetic).items.table()
    assert torch.equal(items.teacher, teacher_table.detach())
    with torch.no_grad():
        ids = torch.arange(synthetic.n_items)
        assert torch.allclose(items.lookup(ids), 0.2 * items.inner.lookup(ids) + 0.8 * teacher_table, atol=1e-6)
        query = torch.randn(3, 16)
        assert torch.allclose(items.score_all(query), query @ items.table().T, atol=1e-5)
    summary = json.loads((tmp_path / "summary.json").read_text())["item_embedding"]
    codes_bytes = -(-synthetic.n_items * 2 * 5 // 8) + 2 * 32 * 16 * 4
    assert summary["method"] == "blend"
    assert summary["bytes"] == codes_bytes + synthetic.n_items * 16 * 4
    assert payload_bytes(tmp_path / "item_embedding.fedrec") == summary["bytes"]
    deployed = load_sasrec(tmp_path, synthetic).eval()
    with torch.no_grad():
        assert torch.allclose(deployed.score(synthetic.test), result.model.eval().score(synthetic.test), atol=1e-5)
    with pytest.raises(ConfigError, match="give --teacher RUN_DIR"):
        build_model("sasrec", synthetic, resolve("sasrec", "synthetic", overrides={"teacher_mix": 0.5}))
    with pytest.raises(ConfigError, match="set through teacher_mix"):
        build_model("sasrec", synthetic, resolve("sasrec", "synthetic", overrides=overrides | {"embedding": "blend"}))
    with pytest.raises(ConfigError, match="teacher_mix = 1.5 is not a number > 0 and <= 1"):
        build_model("sasrec", synthetic, resolve("sasrec", "synthetic", overrides=overrides | {"teacher_mix": 1.5}))
