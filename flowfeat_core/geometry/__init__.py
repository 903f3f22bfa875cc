"""Camera geometry from video: two-view poses and triangulation, depth labels from motion."""
