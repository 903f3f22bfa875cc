"""Object tracking on dense features: label propagation, prompts and the live tracker."""
