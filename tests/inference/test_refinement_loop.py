"""The code-driven stage-1 IRMoGen loop: per-sample stopping, only active samples regenerated, rounds."""

from __future__ import annotations

from collections.abc import Sequence


class ScriptedInstructor:
    """A deterministic refinement-instruction policy: caption ``c`` is told to stop from round
    ``stop_round[c]`` on (with the given stop wording), otherwise gets a round-specific instruction."""

    def __init__(self, stop_round: dict[str, int], stop_text: str = "No refinements needed.") -> None:
        self.stop_round, self.stop_text = stop_round, stop_text
        self.calls: list[tuple[list[str], list[str], int]] = []

    def __call__(self, captions: Sequence[str], motion_texts: Sequence[str], round_index: int) -> list[str]:
        self.calls.append((list(captions), list(motion_texts), round_index))
        return [
            self.stop_text if round_index >= self.stop_round[c] else f"move faster in round {round_index}."
            for c in captions
        ]


def test_loop_stops_per_sample_and_regenerates_only_active(make_engine, llm, toy_captions):
    captions = toy_captions[:3]
    policy = ScriptedInstructor({captions[0]: 0, captions[1]: 1, captions[2]: 99})
    engine = make_engine(max_new_tokens=6, motion_constrained=True, max_motion_codes=4, cache_greedy=False)
    results = engine.run(
        "direct_generation-instructed_refinement", captions, max_refine_round=2, instructor=policy
    )
    # one initial batch of 3, then refinement batches of the still-active samples only
    assert [(c.kind, c.batch_size) for c in engine.stats.calls] == [("loop", 3), ("loop", 2), ("loop", 1)]
    assert [len(call[0]) for call in policy.calls] == [3, 2]
    assert [r.rounds for r in results] == [0, 1, 2]
    assert [r.stopped for r in results] == [True, True, False]
    assert [r.num_gens for r in results] == [1, 2, 3]
    summary = engine.stats.summary()
    assert summary["rounds_histogram"] == {"0": 1, "1": 1, "2": 1}
    assert summary["stop_reasons"] == {"stop_sentence": 2, "max_rounds": 1}
    # the instruction prompt carries the previous motion as upstream: the emitted code string
    first_motions = policy.calls[0][1]
    assert first_motions == [llm.vocab.codes_to_text(r.trace[0]["codes"]) for r in results]
    # a finished sample keeps the motion it had when it stopped
    assert results[0].codes == results[0].trace[0]["codes"]
    refinements = [step for step in results[1].trace if step["step"] == "instructed_refinement"]
    assert len(refinements) == 1 and results[1].codes == refinements[0]["codes"]
    assert results[1].trace[-1] == {
        "step": "refine_instruction",
        "round": 2,
        "text": "No refinements needed.",
    }


def test_stop_wording_variants_follow_the_lenient_option(make_engine, toy_captions):
    captions = toy_captions[:2]
    for lenient, expected_rounds in ((True, [0, 0]), (False, [1, 1])):
        policy = ScriptedInstructor({c: 0 for c in captions}, stop_text="No refinement needed.")
        engine = make_engine(
            max_new_tokens=4, motion_constrained=True, max_motion_codes=3, lenient_stop=lenient
        )
        results = engine.run(
            "direct_generation-instructed_refinement", captions, max_refine_round=1, instructor=policy
        )
        assert [r.rounds for r in results] == expected_rounds


def test_analysis_variant_runs_analysis_first(make_engine, toy_captions):
    captions = toy_captions[:2]
    engine = make_engine(max_new_tokens=5, motion_constrained=True, max_motion_codes=3, cache_greedy=False)
    policy = ScriptedInstructor({c: 0 for c in captions})
    results = engine.run(
        "analysis_generation-instructed_refinement", captions, max_refine_round=3, instructor=policy
    )
    assert [r.trace[0]["step"] for r in results] == ["prompt_analysis"] * 2
    assert [r.rounds for r in results] == [0, 0]
    assert [c.batch_size for c in engine.stats.calls] == [2, 2]  # analysis, then generation
