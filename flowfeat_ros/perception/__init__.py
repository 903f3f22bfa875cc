"""The real-time ``perception`` node (node.py; entry point flowfeat_ros/perception_node.py).

parameters: declared parameters and their validation; frame_mailbox: newest-frame-only hand-off
from callbacks to the worker; runtime: model/probe loading and atomic hot swap; rendering: output
images from model tensors; outputs: publishers per camera; pipeline_stats: rates, latencies, stage
timings and the /diagnostics message.
"""
