"""ecglens.score: Challenge-2024 SNR and related per-lead scores of read records against truth."""
