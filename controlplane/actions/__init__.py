"""Actions: recommendation maths, the safety gate, the engine and its actuators."""
