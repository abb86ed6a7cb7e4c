"""Caption metrics on hand-written examples with known values (and nltk as an independent BLEU check)."""

from __future__ import annotations

import math

import pytest

from evaluators.caption_metrics import bert_score, bleu, caption_metrics, cider, rouge_l, simple_tokenize

PRED = "the cat sat on the mat"
REF = "the cat is on the mat"


def test_simple_tokenize():
    assert simple_tokenize("A man walks, then JUMPS!  (twice)") == [
        "a",
        "man",
        "walks",
        "then",
        "jumps",
        "twice",
    ]


def test_identical_strings_score_one():
    preds = ["a person walks forward and waves", "a man jumps up and down twice"]
    refs = [[p] for p in preds]
    assert bleu(preds, refs, 1) == 1.0 and bleu(preds, refs, 4) == 1.0
    assert rouge_l(preds, refs) == {"precision": 1.0, "recall": 1.0, "fmeasure": 1.0}
    assert cider(preds, refs) == pytest.approx(10.0)


def test_bleu_hand_computed_values():
    # unigrams 5/6; bigrams 3/5; trigrams 1/4; 4-grams 0/3; equal lengths -> no brevity penalty.
    assert bleu([PRED], [[REF]], max_order=1) == pytest.approx(5 / 6)
    assert bleu([PRED], [[REF]], max_order=4) == 0.0
    smoothed = math.exp((math.log(6 / 7) + math.log(4 / 6) + math.log(2 / 5) + math.log(1 / 4)) / 4)
    assert bleu([PRED], [[REF]], max_order=4, smooth=True) == pytest.approx(smoothed)
    # Brevity penalty against the shortest reference: 3 predicted tokens vs 6 -> exp(1 - 2).
    assert bleu(
        ["the cat sat"], [["the cat sat on the mat", "the cat sat on the red mat"]], 1
    ) == pytest.approx(math.exp(-1.0))


def test_bleu_counts_clip_against_the_best_reference_and_agrees_with_nltk():
    from nltk.translate.bleu_score import corpus_bleu

    preds = ["a person walks forward slowly and then turns left", "someone jumps up and down"]
    refs = [
        ["a person walks forward and then turns left", "the man slowly walks forward and turns to the left"],
        ["a person jumps up and down in place"],
    ]
    ours = bleu(preds, refs, max_order=4)
    # Here the shortest reference is also the closest in length, so nltk's corpus_bleu must agree.
    theirs = corpus_bleu(
        [[simple_tokenize(r) for r in group] for group in refs], [simple_tokenize(p) for p in preds]
    )
    assert ours == pytest.approx(theirs, rel=1e-12) and 0.3 < ours < 0.9


def test_rouge_l_takes_the_best_reference():
    # LCS("the cat sat on the mat", "the cat is on the mat") = 5 -> P = R = F = 5/6.
    assert rouge_l([PRED], [[REF]])["fmeasure"] == pytest.approx(5 / 6)
    assert rouge_l([PRED], [["a dog barks", REF]])["fmeasure"] == pytest.approx(5 / 6)


def test_cider_orders_better_captions_higher():
    refs = [["a person walks forward"], ["a man jumps up"], ["someone sits on a chair"]]
    good = cider(["a person walks forward", "a man jumps up", "someone sits on a chair"], refs)
    worse = cider(["a person walks", "a man jumps up", "someone runs"], refs)
    assert good == pytest.approx(10.0) and 0 < worse < good


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="predictions but"):
        bleu(["a"], [["a"], ["b"]])
    with pytest.raises(ValueError, match="non-empty list"):
        rouge_l(["a"], ["a"])


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    """A random 2-layer BERT with a WordPiece tokenizer trained on a few motion captions, saved locally."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    corpus = [
        "a person walks forward and waves",
        "a man jumps up and down",
        "someone turns around slowly",
        "the person sits on a chair",
    ] * 4
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=120, special_tokens=specials))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[(t, tokenizer.token_to_id(t)) for t in ("[CLS]", "[SEP]")]
    )
    folder = tmp_path_factory.mktemp("tiny_bert")
    BertTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    ).save_pretrained(str(folder))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(str(folder))
    return folder


def test_bert_score_with_a_local_tiny_bert(tiny_bert_dir):
    preds = ["a person walks forward and waves", "a man jumps"]
    same = bert_score(preds, [[p] for p in preds], tiny_bert_dir)
    assert same["f1"] == pytest.approx(1.0, abs=1e-5)
    multi = bert_score(
        preds,
        [["someone turns around slowly", preds[0]], ["the person sits on a chair"]],
        tiny_bert_dir,
        num_layers=1,
    )
    assert multi["f1"] < 1.0
    everything = caption_metrics(preds, [[p] for p in preds], bert_model=tiny_bert_dir)
    assert set(everything) == {
        "bleu_1",
        "bleu_4",
        "rouge_l",
        "cider",
        "bertscore_precision",
        "bertscore_recall",
        "bertscore_f1",
    }
