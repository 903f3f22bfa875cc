"""What every node process shares: ``run_node`` (signals, init, build, spin, clean up).

Signals follow the one rule of flowfeat_core.process.stop_signals: the first SIGINT or SIGTERM asks
the node to stop; any later one (a terminal's Ctrl-C reaches the whole process group and
``ros2 launch`` forwards another) is noted once on stderr and ignored, so clean-up such as closing
a bag always completes and no ``KeyboardInterrupt`` traceback is printed. The handlers are
installed before the node's module (torch, rclpy) is imported, which takes seconds: a signal
during start-up stops the process quietly too. A requested stop exits with status 0.

rclpy's own signal handler is not installed: it would shut the context down at the signal, and
the node's clean-up (closing a bag) would then log into a dead rosout ("Failed to publish log
message to rosout"). The spin loop here polls the stop request instead, every SPIN_PERIOD_S, and
the clean-up runs while the context is still valid. The same loop stops the node when the process
that started it is gone (``ros2 launch`` killed by SIGTERM leaves its children running, upstream
launch behaviour): a node reparented to init or a subreaper closes its files and exits.
One thread serves callbacks: rclpy's MultiThreadedExecutor busy-waits (ros2/rclpy#1223) and slows
the perception worker's inference 10-20x.

Bad parameters (``ValueError`` / ``ParameterException`` from the node's constructor) print one
line ``<program>: bad parameter: <reason>`` on stderr and exit with status 2.

This module imports only the standard library and standard-library-only helpers at load time,
so it can guard the heavy imports.
"""

from __future__ import annotations

import importlib
import os
import re
import sys

from flowfeat_core.data.image_size import DECODER_LIMIT_VARIABLE, DECODER_MAX_PIXELS
from flowfeat_core.inference.allocator import retain_freed_memory
from flowfeat_core.process.stop_signals import StopSignals
from flowfeat_ros.dds_profile import use_large_message_profile
from flowfeat_ros.package_paths import config_dir

#: Longest wait between two checks of the stop request and of the parent process.
SPIN_PERIOD_S = 0.1


def _without_source_locations(error: Exception) -> str:
    """rcl's messages end each clause with ``, at /project/src/rcl/<file>.c:<line>``."""
    return re.sub(r", at [^ ,]+\.c:\d+", "", str(error))


def _import_node_class(path: str) -> type:
    module_name, _, class_name = path.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def run_node(program: str, node_class_path: str, args: list[str] | None) -> None:
    """Run the node class at ``node_class_path`` (``"package.module:Class"``) until it is done
    or the process is asked to stop; meant to be the last thing a node process does.

    Spinning ends at a stop signal, when the launching process is gone, or when the node sets
    ``finished``. The class may define ``finish()``, which runs once after spinning, whatever
    ended it, before the node is destroyed.
    """
    stop = StopSignals(program)
    stop.install()
    retain_freed_memory()  # a process-wide malloc policy: set once, at program start
    # OpenCV reads its decoder pixel cap once, when it loads: before the node imports cv2
    os.environ.setdefault(DECODER_LIMIT_VARIABLE, str(DECODER_MAX_PIXELS))
    # Fast DDS reads its profile when the participant is created: a node started alone
    # (`ros2 run`) gets the large-message profile too, unless the user chose one
    use_large_message_profile(config_dir())
    try:
        _run(stop, program, node_class_path, args)
    finally:
        stop.ignore_from_now_on()


def _run(stop: StopSignals, program: str, node_class_path: str, args: list[str] | None) -> None:
    launcher = os.getppid()
    node_class = _import_node_class(node_class_path)
    import rclpy  # after the handlers: importing takes long enough to be interrupted
    from rclpy.exceptions import ParameterException
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.impl.implementation_singleton import rclpy_implementation
    from rclpy.signals import SignalHandlerOptions

    RCLError = rclpy_implementation.RCLError

    if stop.requested:
        return
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except RCLError as error:  # e.g. a remap rule to an invalid topic name
        print(f"{program}: bad arguments: {_without_source_locations(error)}", file=sys.stderr)
        sys.exit(2)
    try:
        node = node_class()
    except (ValueError, ParameterException, RCLError) as error:
        if stop.requested:
            return rclpy.try_shutdown()
        print(f"{program}: bad parameter: {_without_source_locations(error)}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)
    except Exception:
        rclpy.try_shutdown()
        if stop.requested:  # the context was shut down under the constructor
            return
        raise
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.requested and not getattr(node, "finished", False):
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
            if os.getppid() != launcher:
                print(f"{program}: the process that started it (pid {launcher}) is gone; "
                      "stopping", file=sys.stderr)
                break
    except ExternalShutdownException:
        pass
    except Exception:
        if not stop.requested:  # e.g. "context is not valid" from a wait set after a signal
            raise
    finally:
        getattr(node, "finish", lambda: None)()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
