"""The cue plan (DESIGN.md data flow step 3): picture and theme become an explicit, editable musical plan.

`compose.make_plan` builds a `plan.CuePlan` (JSON / multi-track MIDI round trip, `CuePlan.controls` for today's
bundle); one module per concept: mood, tempo_map, harmony (+ build_style), melody, bass, rhythm, dynamics.
"""
