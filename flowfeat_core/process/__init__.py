"""What every long-running program here needs from its process and file system, whatever it
does (ROS nodes, training, the on-robot loop): the stop-signal rule and atomic file writes."""
