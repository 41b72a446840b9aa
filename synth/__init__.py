"""ecglens.synth: the ground-truth page factory (12-lead page renderer, distortions)."""
