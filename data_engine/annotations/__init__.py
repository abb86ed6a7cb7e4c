"""Annotation files of every stage: typed records, validation, loading, and per-access sampling."""

from data_engine.annotations.loader import (
    AnnotationSummary,
    load_annotation_file,
    load_annotation_files,
    load_rl_jsonl,
    validate_annotation_file,
    validate_file,
    validate_rl_jsonl,
)
from data_engine.annotations.sampling import (
    FirstVariantPolicy,
    RandomPolicy,
    ResolvedSample,
    SamplingPolicy,
    resolve_record,
)
from data_engine.annotations.schema import (
    AnnotationRecord,
    Assessment,
    Candidate,
    MotionId,
    MotionRef,
    RLRecord,
    parse_motion_id,
)

__all__ = [
    "AnnotationRecord",
    "AnnotationSummary",
    "Assessment",
    "Candidate",
    "FirstVariantPolicy",
    "MotionId",
    "MotionRef",
    "RLRecord",
    "RandomPolicy",
    "ResolvedSample",
    "SamplingPolicy",
    "load_annotation_file",
    "load_annotation_files",
    "load_rl_jsonl",
    "parse_motion_id",
    "resolve_record",
    "validate_annotation_file",
    "validate_file",
    "validate_rl_jsonl",
]
